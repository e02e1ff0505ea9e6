//! `--dist worksteal`: pytest-xdist's `WorkStealingScheduling`, group-aware and duration-aware.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::core::{locality_order, Nodes, TState, Tests, UState, UnitKey, Units};
use crate::{Action, Collection, NodeKey, SchedConfig, SchedError, Scheduling};

/// A node holding fewer than this many tests is idle (it cannot start its last one).
const MIN_PENDING: usize = 2;

/// Even split up front; idle nodes then steal the last queued units of the busiest node.
#[derive(Debug)]
pub struct WorkStealingScheduling {
    cfg: SchedConfig,
    nodes: Nodes,
    collections: usize,
    collection: Option<Arc<Collection>>,
    tests: Tests,
    units: Units,
    /// Units not handed out, and the number of tests they hold.
    queue: VecDeque<u32>,
    queued_tests: usize,
    /// The node asked to give tests back, if any (one steal in flight at a time).
    steal: Option<usize>,
    /// Per slot: the node declined a steal and has not completed a test since.
    declined: Vec<bool>,
    scheduled: bool,
}

impl WorkStealingScheduling {
    pub fn new(cfg: SchedConfig) -> WorkStealingScheduling {
        WorkStealingScheduling {
            cfg,
            nodes: Nodes::default(),
            collections: 0,
            collection: None,
            tests: Tests::default(),
            units: Units::default(),
            queue: VecDeque::new(),
            queued_tests: 0,
            steal: None,
            declined: Vec::new(),
            scheduled: false,
        }
    }

    fn enqueue_back(&mut self, u: u32) {
        let unit = &mut self.units.units[u as usize];
        unit.state = UState::Queued;
        self.queued_tests += unit.remaining;
        self.queue.push_back(u);
    }

    /// Pop the next queued unit (skipping stale entries).
    fn pop_unit(&mut self) -> Option<u32> {
        while let Some(u) = self.queue.pop_front() {
            let unit = &self.units.units[u as usize];
            if unit.state == UState::Queued && unit.remaining > 0 {
                self.queued_tests -= unit.remaining.min(self.queued_tests);
                return Some(u);
            }
        }
        None
    }

    /// The file of unit `u`'s first test.
    fn file_of(&self, u: u32) -> &str {
        let id = self
            .collection
            .as_deref()
            .and_then(|c| c.ids.get(self.units.first_member(u)))
            .map_or("", String::as_str);
        id.split("::").next().unwrap_or(id)
    }

    fn give(&mut self, slot: usize, u: u32, into: &mut Vec<usize>) {
        let lane = &mut self.nodes.list[slot].lane;
        self.units.send(u, &mut self.tests, lane, slot, into);
    }

    fn emit_run(&self, slot: usize, indices: Vec<usize>, out: &mut Vec<Action>) {
        if !indices.is_empty() {
            out.push(Action::Run {
                node: self.nodes.list[slot].key,
                indices,
            });
        }
    }

    fn idle_nodes(&self) -> Vec<usize> {
        self.nodes
            .usable_slots()
            .into_iter()
            .filter(|&s| self.nodes.list[s].lane.live < MIN_PENDING)
            .collect()
    }

    /// Hand every queued unit to the idle nodes.
    fn distribute(&mut self, idle: &[usize], out: &mut Vec<Action>) {
        let mut per: Vec<Vec<usize>> = vec![Vec::new(); idle.len()];
        if self.tests.timed {
            self.deal_by_time(idle, &mut per);
        } else {
            self.deal_by_count(idle, &mut per);
        }
        for (j, indices) in per.into_iter().enumerate() {
            self.emit_run(idle[j], indices, out);
        }
    }

    /// With durations: contiguous runs of about equal estimated time.
    fn deal_by_time(&mut self, idle: &[usize], per: &mut [Vec<usize>]) {
        let k = idle.len();
        // The queue is in duration-aware locality order (longest files first, modules
        // together). Split it into contiguous runs of about equal estimated time, so
        // each node keeps its modules' fixtures; dealing units one by one to the least
        // loaded node would interleave modules and set their fixtures up again and again.
        let mut order: Vec<u32> = Vec::new();
        while let Some(u) = self.pop_unit() {
            order.push(u);
        }
        let ests: Vec<u64> = order
            .iter()
            .map(|&u| self.units.units[u as usize].est)
            .collect();
        let total: u64 = ests.iter().sum();
        let mut load = vec![0u64; k];
        // A file longer than one node's share is split whatever we do (its fixtures are
        // set up on every node that gets a part): deal its units, longest first, to the
        // least loaded node, so that no long test at a split point unbalances the nodes.
        let share = total / k as u64;
        let mut start = 0;
        while start < order.len() {
            let file = self.file_of(order[start]);
            let end = start
                + order[start..]
                    .iter()
                    .take_while(|&&u| self.file_of(u) == file)
                    .count();
            if k < 2 || ests[start..end].iter().sum::<u64>() <= share {
                break;
            }
            for p in start..end {
                let j = (0..k).min_by_key(|&j| (load[j], j)).unwrap_or(0);
                load[j] += ests[p];
                self.give(idle[j], order[p], &mut per[j]);
            }
            start = end;
        }
        let mut remaining: u64 = ests[start..].iter().sum();
        let mut it = order[start..]
            .iter()
            .copied()
            .zip(ests[start..].iter().copied())
            .peekable();
        for (j, &slot) in idle.iter().enumerate() {
            // What brings this node to an equal part of what is left, counting what the
            // long files already gave it and the nodes after it.
            let pool = remaining + load[j..].iter().sum::<u64>();
            let target = (pool / (k - j) as u64).saturating_sub(load[j]);
            let mut got: u64 = 0;
            while let Some(&(u, e)) = it.peek() {
                // Stop where the run is closest to the target; the last node takes the rest.
                if j + 1 < k && !per[j].is_empty() && got + e / 2 > target {
                    break;
                }
                got += e;
                it.next();
                self.give(slot, u, &mut per[j]);
            }
            remaining = remaining.saturating_sub(got);
        }
    }

    /// Without durations, as pytest-xdist.
    fn deal_by_count(&mut self, idle: &[usize], per: &mut [Vec<usize>]) {
        let k = idle.len();
        // pytest-xdist: node i of k gets len(pending) // (k - i) tests (whole units).
        for (j, &slot) in idle.iter().enumerate() {
            let num_send = self.queued_tests / (k - j);
            let mut taken = 0;
            while taken < num_send {
                let Some(u) = self.pop_unit() else {
                    break;
                };
                let before = per[j].len();
                self.give(slot, u, &mut per[j]);
                taken += per[j].len() - before;
            }
        }
    }

    /// The whole units at the end of the node's lane that could be stolen: never its first
    /// (running) unit, never part of a unit, and the node keeps at least `MIN_PENDING` tests.
    fn steal_selection(&self, slot: usize) -> Vec<usize> {
        let lane = &self.nodes.list[slot].lane;
        let len = lane.live;
        if len <= MIN_PENDING {
            return Vec::new();
        }
        let budget = len - MIN_PENDING;
        let num_steal = (len / 2).min(budget);
        let mut picked: Vec<usize> = Vec::new();
        let mut picked_est: u64 = 0;
        let mut live = self.tests.live_rev(lane, slot).peekable();
        let mut front_unit = None;
        // The front test is the last one yielded by the reverse iterator; find its unit lazily.
        let mut run: Vec<usize> = Vec::new();
        while let Some(&first) = live.peek() {
            let u = self.units.unit_of[first];
            run.clear();
            while let Some(&i) = live.peek() {
                if self.units.unit_of[i] != u {
                    break;
                }
                run.push(i);
                live.next();
            }
            if live.peek().is_none() {
                // This run reaches the front of the lane: it holds the running test.
                front_unit = Some(u);
            }
            let unit = &self.units.units[u as usize];
            let whole = front_unit.is_none() && unit.progress == 0 && unit.remaining == run.len();
            if !whole || picked.len() + run.len() > budget {
                break;
            }
            let done = if self.tests.timed {
                !picked.is_empty() && picked_est * 2 >= lane.est
            } else {
                picked.len() >= num_steal
            };
            if done {
                break;
            }
            picked.extend(run.iter().copied());
            picked_est += run.iter().map(|&i| self.tests.est[i]).sum::<u64>();
        }
        picked.reverse();
        picked
    }

    /// pytest-xdist's `check_schedule()`.
    fn check_schedule(&mut self, out: &mut Vec<Action>) {
        if !self.scheduled {
            return;
        }
        let mut idle = self.idle_nodes();
        if idle.is_empty() {
            return;
        }
        if self.queued_tests > 0 {
            self.distribute(&idle, out);
            idle = self.idle_nodes();
            if idle.is_empty() {
                return;
            }
        }
        if self.steal.is_some() {
            return;
        }
        // Victims: busiest first (most estimated time, else most tests); first added wins ties.
        let mut victims: Vec<usize> = self.nodes.usable_slots();
        let timed = self.tests.timed;
        victims.sort_by_key(|&s| {
            let lane = &self.nodes.list[s].lane;
            std::cmp::Reverse(if timed { lane.est } else { lane.live as u64 })
        });
        let mut waiting_on_declined = false;
        for s in victims {
            if self.nodes.list[s].lane.live <= MIN_PENDING {
                continue;
            }
            let pick = self.steal_selection(s);
            if pick.is_empty() {
                continue;
            }
            if self.declined[s] {
                waiting_on_declined = true;
                continue;
            }
            self.steal = Some(s);
            out.push(Action::Steal {
                node: self.nodes.list[s].key,
                indices: pick,
            });
            return;
        }
        if waiting_on_declined {
            // A node that just declined will report a completion soon; ask again then.
            return;
        }
        // Nothing to hand out or steal: idle nodes run their last test.
        for s in idle {
            self.nodes.shutdown(s, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.tests_finished() {
            self.nodes.shutdown_all(out);
        }
    }
}

impl Scheduling for WorkStealingScheduling {
    fn name(&self) -> &'static str {
        "WorkStealingScheduling"
    }

    fn nodes(&self) -> Vec<NodeKey> {
        self.nodes.keys()
    }

    fn collection_is_completed(&self) -> bool {
        self.collections >= self.cfg.num_nodes
    }

    fn tests_finished(&self) -> bool {
        self.collection_is_completed()
            && self.scheduled
            && self.queued_tests == 0
            && self.steal.is_none()
            && self.nodes.all_below_two()
    }

    fn has_pending(&self) -> bool {
        self.queued_tests > 0 || self.nodes.any_pending()
    }

    fn add_node(&mut self, node: NodeKey, spec: &str) {
        let slot = self.nodes.add(node, spec);
        if slot >= self.declined.len() {
            self.declined.resize(slot + 1, false);
        }
    }

    fn add_node_collection(&mut self, node: NodeKey, collection: Arc<Collection>) {
        if self.nodes.mark_collected(node).is_some() {
            self.collections += 1;
            self.collection.get_or_insert(collection);
        }
    }

    fn mark_test_complete(
        &mut self,
        node: NodeKey,
        index: usize,
        _duration: f64,
        out: &mut Vec<Action>,
    ) {
        let Some(slot) = self.nodes.slot(node) else {
            return;
        };
        if self
            .tests
            .take(&mut self.nodes.list[slot].lane, slot, index, TState::Done)
        {
            self.units.resolve(index, true);
        }
        self.declined[slot] = false;
        self.check_schedule(out);
        self.finish(out);
    }

    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError> {
        if !self.scheduled || index >= self.tests.len() {
            return Err(SchedError::UnknownTest(index));
        }
        if !matches!(self.tests.state[index], TState::Done | TState::Crashed) {
            return Ok(());
        }
        self.tests.state[index] = TState::Waiting;
        let u = self.units.unit_of[index] as usize;
        match self.units.units[u].state {
            UState::Queued => {
                // Its unit is not handed out yet: the test rejoins it.
                self.units.units[u].remaining += 1;
                self.queued_tests += 1;
            }
            UState::OnNode(n) if self.nodes.usable(n as usize) => {
                // Its unit is on a node that still takes work: keep the unit together there.
                let slot = n as usize;
                self.units.units[u].remaining += 1;
                let node = &mut self.nodes.list[slot];
                self.tests.assign(&mut node.lane, slot, index);
                out.push(Action::Run {
                    node: node.key,
                    indices: vec![index],
                });
            }
            _ => {
                let est = self.tests.est[index];
                let nu = self.units.detach(index, est);
                self.queued_tests += 1;
                self.queue.push_front(nu);
            }
        }
        self.check_schedule(out);
        self.finish(out);
        Ok(())
    }

    fn remove_pending_tests_from_node(
        &mut self,
        node: NodeKey,
        indices: &[usize],
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        let slot = self.nodes.slot(node).ok_or(SchedError::UnknownNode(node))?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.tests.len()) {
            return Err(SchedError::UnknownTest(bad));
        }
        if self.steal == Some(slot) {
            self.steal = None;
        }
        // Take the returned tests off the node (only those it really holds).
        let mut returned: Vec<usize> = Vec::with_capacity(indices.len());
        for &i in indices {
            if self
                .tests
                .take(&mut self.nodes.list[slot].lane, slot, i, TState::Waiting)
            {
                returned.push(i);
            }
        }
        if returned.is_empty() {
            self.declined[slot] = true;
        }
        // Whole units go back to the queue; a part of a unit goes back to the same node, so a
        // group is never split by a partial answer.
        let mut back_to_node: Vec<usize> = Vec::new();
        let mut i = 0;
        while i < returned.len() {
            let u = self.units.unit_of[returned[i]];
            let mut count = 0;
            let mut j = i;
            while j < returned.len() && self.units.unit_of[returned[j]] == u {
                count += 1;
                j += 1;
            }
            let unit = &self.units.units[u as usize];
            let whole = unit.progress == 0
                && unit.remaining == count
                && unit.state == UState::OnNode(slot as u32);
            if whole {
                self.enqueue_back(u);
            } else {
                back_to_node.extend_from_slice(&returned[i..j]);
            }
            i = j;
        }
        if !back_to_node.is_empty() {
            if self.nodes.list[slot].shutdown {
                // Cannot send to a node that was shut down: requeue these tests on their own.
                for &t in &back_to_node {
                    let est = self.tests.est[t];
                    let nu = self.units.detach(t, est);
                    self.enqueue_back(nu);
                }
            } else {
                for &t in &back_to_node {
                    self.tests.assign(&mut self.nodes.list[slot].lane, slot, t);
                }
                self.emit_run(slot, back_to_node, out);
            }
        }
        self.check_schedule(out);
        self.finish(out);
        Ok(())
    }

    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        let slot = self.nodes.slot(node)?;
        let items = self.tests.drain(&mut self.nodes.list[slot].lane, slot);
        self.nodes.remove(slot);
        if self.steal == Some(slot) {
            self.steal = None;
        }
        let crash = items.first().copied();
        if let Some(c) = crash {
            self.tests.state[c] = TState::Crashed;
            self.units.resolve(c, false);
            for &i in &items[1..] {
                self.tests.state[i] = TState::Waiting;
                let u = self.units.unit_of[i];
                if self.units.units[u as usize].state == UState::OnNode(slot as u32) {
                    self.enqueue_back(u);
                }
            }
        }
        self.check_schedule(out);
        self.finish(out);
        crash
    }

    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.collection_is_completed() {
            return;
        }
        if !self.scheduled {
            if let Some(coll) = self.collection.clone() {
                let n = coll.len();
                self.tests = Tests::new(n, self.cfg.durations.as_deref().map(|d| d.as_slice()));
                self.units = Units::build(n, &self.tests.est, |i| match coll.group(i) {
                    Some(g) => UnitKey::Named(g),
                    None => UnitKey::Single,
                });
                let mut order: Vec<u32> = (0..self.units.count() as u32).collect();
                if self.tests.timed {
                    // Longest work first, keeping modules and classes together (see
                    // `locality_order`): units follow the position of their first test.
                    let rank = locality_order(&coll.ids, &self.tests.est);
                    let mut pos = vec![0usize; n];
                    for (p, &t) in rank.iter().enumerate() {
                        pos[t] = p;
                    }
                    let mut upos = vec![usize::MAX; self.units.count()];
                    for (t, &p) in pos.iter().enumerate() {
                        let u = self.units.unit_of[t] as usize;
                        upos[u] = upos[u].min(p);
                    }
                    order.sort_by_key(|&u| upos[u as usize]);
                }
                self.queued_tests = n;
                self.queue = order.into();
            }
            self.scheduled = true;
        }
        self.check_schedule(out);
        self.finish(out);
    }

    fn mark_node_shutdown(&mut self, node: NodeKey) {
        self.nodes.note_shutdown(node);
    }
}

#[cfg(test)]
mod tests;
