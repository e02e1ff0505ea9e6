//! Shared bookkeeping for the schedulers: the node table, per-test state, per-node pending
//! lanes with O(1) amortised removal, and work units (scopes / groups).
//!
//! Everything here is linear in the number of tests: a node's pending tests live in a
//! `VecDeque` of `(index, generation)` entries; an entry is live only while the test's state
//! still says it is on that node *and* its generation matches, so removing a test anywhere in a
//! lane is O(1) (stale entries are trimmed lazily from both ends).

use std::collections::{HashMap, VecDeque};

use crate::{Action, NodeKey};

/// Where a test is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TState {
    /// Not handed out yet (in the global queue, or part of a queued unit).
    Waiting,
    /// Sent to the node in this slot and not completed.
    OnNode(u32),
    /// Completed.
    Done,
    /// Was running when its node died; reported as crashed, not rerun unless re-pended.
    Crashed,
}

/// The tests sent to one node and not yet completed, in send order.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    q: VecDeque<(usize, u32)>,
    /// Number of live entries (the node's pending count).
    pub live: usize,
    /// Sum of the estimated durations (µs) of the live entries.
    pub est: u64,
}

impl Lane {
    fn clear(&mut self) {
        self.q.clear();
        self.live = 0;
        self.est = 0;
    }
}

/// One worker as a scheduler sees it.
#[derive(Debug)]
pub(crate) struct Node {
    pub key: NodeKey,
    pub spec: String,
    pub collected: bool,
    pub shutdown: bool,
    pub alive: bool,
    pub lane: Lane,
}

/// The node table: slots in insertion order (dead nodes stay as tombstones so slots are stable).
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    pub list: Vec<Node>,
    map: HashMap<NodeKey, usize>,
}

impl Nodes {
    /// Add a node (or return the slot of a node already known under that key).
    pub fn add(&mut self, key: NodeKey, spec: &str) -> usize {
        if let Some(&slot) = self.map.get(&key) {
            return slot;
        }
        let slot = self.list.len();
        self.list.push(Node {
            key,
            spec: spec.to_string(),
            collected: false,
            shutdown: false,
            alive: true,
            lane: Lane::default(),
        });
        self.map.insert(key, slot);
        slot
    }

    /// The slot of a live node.
    pub fn slot(&self, key: NodeKey) -> Option<usize> {
        self.map.get(&key).copied()
    }

    /// Records that the node sent its collection; the slot the first time, None for an
    /// unknown node or a repeated collection.
    pub fn mark_collected(&mut self, key: NodeKey) -> Option<usize> {
        let slot = self.slot(key)?;
        let node = &mut self.list[slot];
        if node.collected {
            return None;
        }
        node.collected = true;
        Some(slot)
    }

    /// Forget a node (it died or exited). Its lane must have been drained by the caller.
    pub fn remove(&mut self, slot: usize) {
        let key = self.list[slot].key;
        self.map.remove(&key);
        let node = &mut self.list[slot];
        node.alive = false;
        node.lane.clear();
    }

    pub fn keys(&self) -> Vec<NodeKey> {
        self.list
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.key)
            .collect()
    }

    pub fn alive_count(&self) -> usize {
        self.map.len()
    }

    /// Live, collected and not shut down: may be given work.
    pub fn usable(&self, slot: usize) -> bool {
        let n = &self.list[slot];
        n.alive && n.collected && !n.shutdown
    }

    pub fn usable_slots(&self) -> Vec<usize> {
        (0..self.list.len()).filter(|&s| self.usable(s)).collect()
    }

    /// Emit `Shutdown` for the node once; later calls are no-ops.
    pub fn shutdown(&mut self, slot: usize, out: &mut Vec<Action>) {
        let n = &mut self.list[slot];
        if n.alive && !n.shutdown {
            n.shutdown = true;
            out.push(Action::Shutdown { node: n.key });
        }
    }

    /// Shut down every live node not yet shut down (collected or not).
    pub fn shutdown_all(&mut self, out: &mut Vec<Action>) {
        for slot in 0..self.list.len() {
            self.shutdown(slot, out);
        }
    }

    /// The controller shut the node down on its own.
    pub fn note_shutdown(&mut self, key: NodeKey) {
        if let Some(slot) = self.slot(key) {
            self.list[slot].shutdown = true;
        }
    }

    /// Every live node has fewer than two pending tests.
    pub fn all_below_two(&self) -> bool {
        self.list.iter().all(|n| !n.alive || n.lane.live < 2)
    }

    pub fn any_pending(&self) -> bool {
        self.list.iter().any(|n| n.alive && n.lane.live > 0)
    }
}

/// Estimated duration in whole microseconds (bad values count as zero).
pub(crate) fn est_micros(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1e6).min(1e15) as u64
    } else {
        0
    }
}

/// Per-test state for a collection of `n` tests.
#[derive(Debug, Default)]
pub(crate) struct Tests {
    pub state: Vec<TState>,
    gen: Vec<u32>,
    /// Estimated duration (µs) per test; all zero without history.
    pub est: Vec<u64>,
    /// True when duration history is in use.
    pub timed: bool,
}

impl Tests {
    /// Durations are used only when present and aligned with the collection.
    pub fn new(n: usize, durations: Option<&[f64]>) -> Tests {
        let (est, timed) = match durations {
            Some(d) if d.len() == n => (d.iter().map(|&s| est_micros(s)).collect(), true),
            _ => (vec![0; n], false),
        };
        Tests {
            state: vec![TState::Waiting; n],
            gen: vec![0; n],
            est,
            timed,
        }
    }

    pub fn len(&self) -> usize {
        self.state.len()
    }

    fn is_live(&self, slot: usize, entry: (usize, u32)) -> bool {
        let (idx, g) = entry;
        self.gen[idx] == g && self.state[idx] == TState::OnNode(slot as u32)
    }

    fn trim(&self, lane: &mut Lane, slot: usize) {
        while let Some(&e) = lane.q.front() {
            if self.is_live(slot, e) {
                break;
            }
            lane.q.pop_front();
        }
        while let Some(&e) = lane.q.back() {
            if self.is_live(slot, e) {
                break;
            }
            lane.q.pop_back();
        }
    }

    /// Put test `idx` at the end of the node's lane.
    pub fn assign(&mut self, lane: &mut Lane, slot: usize, idx: usize) {
        self.gen[idx] = self.gen[idx].wrapping_add(1);
        self.state[idx] = TState::OnNode(slot as u32);
        lane.q.push_back((idx, self.gen[idx]));
        lane.live += 1;
        lane.est += self.est[idx];
    }

    /// If `idx` is pending on this node, take it out of the lane and set its new state.
    pub fn take(&mut self, lane: &mut Lane, slot: usize, idx: usize, new: TState) -> bool {
        if idx >= self.len() || self.state[idx] != TState::OnNode(slot as u32) {
            return false;
        }
        self.state[idx] = new;
        lane.live -= 1;
        lane.est -= self.est[idx];
        self.trim(lane, slot);
        true
    }

    /// The node's pending tests, last first.
    pub fn live_rev<'a>(&'a self, lane: &'a Lane, slot: usize) -> impl Iterator<Item = usize> + 'a {
        lane.q
            .iter()
            .rev()
            .filter(move |&&e| self.is_live(slot, e))
            .map(|e| e.0)
    }

    /// Take every pending test off the node, in order. States are left for the caller to set.
    pub fn drain(&mut self, lane: &mut Lane, slot: usize) -> Vec<usize> {
        let items: Vec<usize> = lane
            .q
            .iter()
            .filter(|&&e| self.is_live(slot, e))
            .map(|e| e.0)
            .collect();
        lane.clear();
        items
    }
}

/// Duration-aware order of tests: the longest work first, without breaking fixture
/// locality. A plain longest-first sort interleaves modules, so every test would set up and
/// tear down its module's fixtures again (and the next run's history would say every test is
/// slow). Instead: files by total estimate (descending), within a file its scopes (classes)
/// by total, within a scope tests by estimate; ties keep collection order.
pub(crate) fn locality_order(ids: &[String], est: &[u64]) -> Vec<usize> {
    use std::collections::HashMap;
    let n = ids.len().min(est.len());
    // (total estimate, first index) per file and per scope.
    let mut files: HashMap<&str, (u64, usize)> = HashMap::new();
    let mut scopes: HashMap<&str, (u64, usize)> = HashMap::new();
    for i in 0..n {
        let id = ids[i].as_str();
        let file = id.split("::").next().unwrap_or(id);
        let scope = id.rsplit_once("::").map_or(id, |(s, _)| s);
        let f = files.entry(file).or_insert((0, i));
        f.0 += est[i];
        let s = scopes.entry(scope).or_insert((0, i));
        s.0 += est[i];
    }
    let key = |i: usize| {
        let id = ids[i].as_str();
        let file = id.split("::").next().unwrap_or(id);
        let scope = id.rsplit_once("::").map_or(id, |(s, _)| s);
        let (ft, ff) = files[file];
        let (st, sf) = scopes[scope];
        (
            std::cmp::Reverse(ft),
            ff,
            std::cmp::Reverse(st),
            sf,
            std::cmp::Reverse(est[i]),
            i,
        )
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_cached_key(|&i| key(i));
    order
}

/// Where a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UState {
    Queued,
    OnNode(u32),
    Finished,
}

/// A work unit: tests that must run on one node (a scope, a file or an `xdist_group`).
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    start: usize,
    len: usize,
    /// Member tests not yet completed or crashed (and attached to this unit).
    pub remaining: usize,
    pub state: UState,
    /// Sum of the members' estimated durations (µs).
    pub est: u64,
    /// Members completed since the unit was last handed to a node.
    pub progress: usize,
}

/// What a test's unit is keyed by while building units.
pub(crate) enum UnitKey<'a> {
    Named(&'a str),
    Single,
}

/// All units of a collection, members flattened, each unit's members in collection order.
#[derive(Debug, Default)]
pub(crate) struct Units {
    members: Vec<usize>,
    pub units: Vec<Unit>,
    /// The unit each test currently belongs to.
    pub unit_of: Vec<u32>,
}

impl Units {
    /// Build units in first-seen order.
    pub fn build<'a>(n: usize, est: &[u64], key: impl Fn(usize) -> UnitKey<'a>) -> Units {
        let mut ids: HashMap<&'a str, u32> = HashMap::new();
        let mut unit_of = Vec::with_capacity(n);
        let mut sizes: Vec<usize> = Vec::new();
        for i in 0..n {
            let u = match key(i) {
                UnitKey::Named(name) => *ids.entry(name).or_insert_with(|| {
                    sizes.push(0);
                    (sizes.len() - 1) as u32
                }),
                UnitKey::Single => {
                    sizes.push(0);
                    (sizes.len() - 1) as u32
                }
            };
            sizes[u as usize] += 1;
            unit_of.push(u);
        }
        let mut units = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for &len in &sizes {
            units.push(Unit {
                start,
                len,
                remaining: len,
                state: UState::Queued,
                est: 0,
                progress: 0,
            });
            start += len;
        }
        let mut fill: Vec<usize> = units.iter().map(|u| u.start).collect();
        let mut members = vec![0; n];
        for (i, &u) in unit_of.iter().enumerate() {
            members[fill[u as usize]] = i;
            fill[u as usize] += 1;
            units[u as usize].est += est.get(i).copied().unwrap_or(0);
        }
        Units {
            members,
            units,
            unit_of,
        }
    }

    pub fn count(&self) -> usize {
        self.units.len()
    }

    /// The first test of unit `u` in collection order (0 for an unknown unit).
    pub fn first_member(&self, u: u32) -> usize {
        self.units
            .get(u as usize)
            .and_then(|unit| self.members.get(unit.start))
            .copied()
            .unwrap_or(0)
    }

    /// A new single-test unit for `idx` (a re-pended test whose unit is gone).
    pub fn detach(&mut self, idx: usize, est: u64) -> u32 {
        let start = self.members.len();
        self.members.push(idx);
        self.units.push(Unit {
            start,
            len: 1,
            remaining: 1,
            state: UState::Queued,
            est,
            progress: 0,
        });
        let u = (self.units.len() - 1) as u32;
        self.unit_of[idx] = u;
        u
    }

    /// Hand unit `u` to the node: its waiting members go to the lane, in collection order.
    pub fn send(
        &mut self,
        u: u32,
        tests: &mut Tests,
        lane: &mut Lane,
        slot: usize,
        into: &mut Vec<usize>,
    ) {
        let unit = &mut self.units[u as usize];
        unit.state = UState::OnNode(slot as u32);
        unit.progress = 0;
        for &m in &self.members[unit.start..unit.start + unit.len] {
            if self.unit_of[m] == u && tests.state[m] == TState::Waiting {
                tests.assign(lane, slot, m);
                into.push(m);
            }
        }
    }

    /// A member test was completed (or crashed): returns true when the unit is finished.
    pub fn resolve(&mut self, idx: usize, completed: bool) -> bool {
        let unit = &mut self.units[self.unit_of[idx] as usize];
        unit.remaining = unit.remaining.saturating_sub(1);
        if completed {
            unit.progress += 1;
        }
        if unit.remaining == 0 {
            unit.state = UState::Finished;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod locality_tests {
    use super::*;

    #[test]
    fn keeps_modules_together_and_puts_long_work_first() {
        let ids: Vec<String> = [
            "a.py::t1",
            "a.py::t2",
            "b.py::t1",
            "b.py::t2",
            "c.py::C::t1",
            "c.py::C::t2",
            "c.py::t3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // b.py is the longest file, c.py's class C outweighs its loose test.
        let est = [1, 1, 5, 9, 2, 2, 3];
        let order = locality_order(&ids, &est);
        assert_eq!(order, vec![3, 2, 4, 5, 6, 0, 1]);
    }
}
