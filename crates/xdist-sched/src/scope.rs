//! `--dist loadscope`, `loadfile` and `loadgroup`: one work-unit scheduler
//! (pytest-xdist's `LoadScopeScheduling` and its subclasses), with the crash fixes.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::core::{Nodes, TState, Tests, UState, UnitKey, Units};
use crate::{Action, Collection, NodeKey, SchedConfig, SchedError, Scheduling};

/// How tests are grouped into work units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// `loadscope`: `nodeid.rsplit("::", 1)[0]` (module or innermost class).
    Scope,
    /// `loadfile`: `nodeid.split("::", 1)[0]` (the file).
    File,
    /// `loadgroup`: the `xdist_group` name; ungrouped tests are units of one test.
    Group,
}

impl ScopeKind {
    /// The scope key of a node id (`Scope` and `File` only).
    pub fn split(self, nodeid: &str) -> &str {
        match self {
            ScopeKind::Scope => nodeid.rsplit_once("::").map_or(nodeid, |(a, _)| a),
            ScopeKind::File => nodeid.split_once("::").map_or(nodeid, |(a, _)| a),
            ScopeKind::Group => nodeid,
        }
    }
}

/// Whole units (scopes, files or groups) are handed to one node each.
#[derive(Debug)]
pub struct ScopeScheduling {
    kind: ScopeKind,
    cfg: SchedConfig,
    nodes: Nodes,
    collections: usize,
    collection: Option<Arc<Collection>>,
    tests: Tests,
    units: Units,
    queue: VecDeque<u32>,
    scheduled: bool,
}

impl ScopeScheduling {
    pub fn new(kind: ScopeKind, cfg: SchedConfig) -> ScopeScheduling {
        ScopeScheduling {
            kind,
            cfg,
            nodes: Nodes::default(),
            collections: 0,
            collection: None,
            tests: Tests::default(),
            units: Units::default(),
            queue: VecDeque::new(),
            scheduled: false,
        }
    }

    fn assign_unit(&mut self, slot: usize, out: &mut Vec<Action>) {
        while let Some(u) = self.queue.pop_front() {
            let unit = &self.units.units[u as usize];
            if unit.state != UState::Queued || unit.remaining == 0 {
                continue;
            }
            let node = &mut self.nodes.list[slot];
            let mut indices = Vec::new();
            self.units
                .send(u, &mut self.tests, &mut node.lane, slot, &mut indices);
            if indices.is_empty() {
                continue;
            }
            out.push(Action::Run {
                node: node.key,
                indices,
            });
            return;
        }
    }

    /// pytest-xdist's `_reschedule(node)`: a node with at most two pending tests gets the next
    /// unit. Fixed: a node keeps taking units until it holds two tests (a node holding one test
    /// cannot start it and would wait forever), and it is shut down as soon as the queue is
    /// empty rather than on a later completion that may never come.
    fn reschedule(&mut self, slot: usize, out: &mut Vec<Action>) {
        if !self.scheduled || !self.nodes.usable(slot) {
            return;
        }
        if self.nodes.list[slot].lane.live <= 2 {
            self.assign_unit(slot, out);
            while self.nodes.list[slot].lane.live < 2 && !self.queue.is_empty() {
                self.assign_unit(slot, out);
            }
        }
        if self.queue.is_empty() {
            self.nodes.shutdown(slot, out);
        }
    }

    fn reschedule_all(&mut self, out: &mut Vec<Action>) {
        for slot in 0..self.nodes.list.len() {
            self.reschedule(slot, out);
        }
    }

    fn initial(&mut self, out: &mut Vec<Action>) {
        let Some(coll) = self.collection.clone() else {
            return;
        };
        let n = coll.len();
        self.tests = Tests::new(n, self.cfg.durations.as_deref().map(|d| d.as_slice()));
        let kind = self.kind;
        self.units = Units::build(n, &self.tests.est, |i| match kind {
            ScopeKind::Group => match coll.group(i) {
                Some(g) => UnitKey::Named(g),
                None => UnitKey::Single,
            },
            _ => UnitKey::Named(kind.split(&coll.ids[i])),
        });
        let mut order: Vec<u32> = (0..self.units.count() as u32).collect();
        if self.cfg.loadscope_reorder {
            let units = &self.units.units;
            if self.tests.timed {
                order.sort_by_key(|&u| std::cmp::Reverse(units[u as usize].est));
            } else {
                order.sort_by_key(|&u| std::cmp::Reverse(units[u as usize].remaining));
            }
        }
        self.queue = order.into();
        self.scheduled = true;

        let usable = self.nodes.usable_slots();
        // Nodes beyond the number of units are not needed: shut them down at once.
        let keep = usable.len().min(self.queue.len());
        for &slot in &usable[keep..] {
            self.nodes.shutdown(slot, out);
        }
        for &slot in &usable[..keep] {
            self.assign_unit(slot, out);
        }
        for &slot in &usable[..keep] {
            self.reschedule(slot, out);
        }
        if self.queue.is_empty() {
            self.nodes.shutdown_all(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.tests_finished() {
            self.nodes.shutdown_all(out);
        }
    }
}

impl Scheduling for ScopeScheduling {
    fn name(&self) -> &'static str {
        match self.kind {
            ScopeKind::Scope => "LoadScopeScheduling",
            ScopeKind::File => "LoadFileScheduling",
            ScopeKind::Group => "LoadGroupScheduling",
        }
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
            && self.queue.is_empty()
            && self.nodes.all_below_two()
    }

    fn has_pending(&self) -> bool {
        !self.queue.is_empty() || self.nodes.any_pending()
    }

    fn add_node(&mut self, node: NodeKey, spec: &str) {
        self.nodes.add(node, spec);
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
        self.reschedule(slot, out);
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
                self.queue.push_front(nu);
            }
        }
        self.reschedule_all(out);
        self.finish(out);
        Ok(())
    }

    fn remove_pending_tests_from_node(
        &mut self,
        _node: NodeKey,
        _indices: &[usize],
        _out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        Err(SchedError::Unsupported { mode: self.name() })
    }

    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        let slot = self.nodes.slot(node)?;
        let items = self.tests.drain(&mut self.nodes.list[slot].lane, slot);
        self.nodes.remove(slot);
        let crash = items.first().copied();
        if let Some(c) = crash {
            // The crashing test is reported, never rerun; completed tests are never re-sent.
            self.tests.state[c] = TState::Crashed;
            self.units.resolve(c, false);
            let mut back: Vec<u32> = Vec::new();
            for &i in &items[1..] {
                self.tests.state[i] = TState::Waiting;
                let u = self.units.unit_of[i];
                let unit = &mut self.units.units[u as usize];
                if unit.state == UState::OnNode(slot as u32) {
                    unit.state = UState::Queued;
                    back.push(u);
                }
            }
            // Unfinished units go back to the front, in their order.
            for &u in back.iter().rev() {
                self.queue.push_front(u);
            }
            self.reschedule_all(out);
        }
        self.finish(out);
        crash
    }

    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.collection_is_completed() {
            return;
        }
        if self.scheduled {
            self.reschedule_all(out);
        } else {
            self.initial(out);
        }
        self.finish(out);
    }

    fn mark_node_shutdown(&mut self, node: NodeKey) {
        self.nodes.note_shutdown(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn coll(ids: &[&str]) -> Collection {
        Collection {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn scope_and_file_keys() {
        assert_eq!(ScopeKind::Scope.split("mod.py::test_f[x]"), "mod.py");
        assert_eq!(
            ScopeKind::Scope.split("mod.py::TestC::test_m"),
            "mod.py::TestC"
        );
        assert_eq!(ScopeKind::Scope.split("mod.py::A::B::t"), "mod.py::A::B");
        assert_eq!(
            ScopeKind::Scope.split("pkg/__init__.py::pkg.func"),
            "pkg/__init__.py"
        );
        assert_eq!(ScopeKind::File.split("mod.py::TestC::test_m"), "mod.py");
        assert_eq!(ScopeKind::File.split("mod.py"), "mod.py");
    }

    fn files() -> Collection {
        // a.py: 1 test, b.py: 3 tests, c.py: 2 tests, d.py: 3 tests
        coll(&[
            "a.py::t0", "b.py::t1", "b.py::t2", "b.py::t3", "c.py::t4", "c.py::t5", "d.py::t6",
            "d.py::t7", "d.py::t8",
        ])
    }

    #[test]
    fn reorder_biggest_units_first() {
        let s = ScopeScheduling::new(ScopeKind::File, cfg(2));
        let (_, out) = started_with(s, files(), 2);
        // Units by size (stable): b(3), d(3), c(2), a(1). Each node gets one unit, then a
        // second one since it has <= 2 pending... node 0 has 3 pending: no second unit.
        assert_eq!(out, vec![run(0, vec![1, 2, 3]), run(1, vec![6, 7, 8])]);
    }

    #[test]
    fn no_reorder_keeps_first_seen_order() {
        let mut c = cfg(2);
        c.loadscope_reorder = false;
        let s = ScopeScheduling::new(ScopeKind::File, c);
        let (mut s, out) = started_with(s, files(), 2);
        assert_eq!(
            out,
            vec![run(0, vec![0]), run(1, vec![1, 2, 3]), run(0, vec![4, 5])]
        );
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 0, 0.0, &mut out);
        // node 0 has 2 pending (<= 2): next unit d; the queue is empty now.
        assert_eq!(out, vec![run(0, vec![6, 7, 8]), shutdown(0)]);
    }

    #[test]
    fn surplus_nodes_shut_down_at_once() {
        let s = ScopeScheduling::new(ScopeKind::File, cfg(4));
        let c = coll(&["a.py::x", "a.py::y", "b.py::z"]);
        let (_, out) = started_with(s, c, 4);
        assert_eq!(
            out,
            vec![
                shutdown(2),
                shutdown(3),
                run(0, vec![0, 1]),
                run(1, vec![2]),
                shutdown(0),
                shutdown(1)
            ]
        );
    }

    #[test]
    fn loadgroup_keeps_groups_together() {
        let mut c = coll(&["t.py::a", "t.py::b", "t.py::c", "t.py::d", "t.py::e"]);
        c.groups = vec![
            Some("g1".into()),
            None,
            Some("g1".into()),
            None,
            Some("g2".into()),
        ];
        let s = ScopeScheduling::new(ScopeKind::Group, cfg(2));
        let (s, out) = started_with(s, c, 2);
        // Units: g1 [0, 2] (2 tests) first, then singles 1, 3 and g2 [4].
        assert_eq!(
            out,
            vec![
                run(0, vec![0, 2]),
                run(1, vec![1]),
                run(0, vec![3]),
                run(1, vec![4]),
                shutdown(1),
                shutdown(0)
            ]
        );
        assert_eq!(s.name(), "LoadGroupScheduling");
    }

    #[test]
    fn crash_does_not_rerun_crash_item_or_completed_units() {
        let mut c = cfg(2);
        c.loadscope_reorder = false;
        let s = ScopeScheduling::new(ScopeKind::File, c);
        let (mut s, _) = started_with(s, files(), 2);
        // node 1 holds b [1, 2, 3]; it completes 1 and crashes on 2.
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(1), 1, 0.0, &mut out);
        assert_eq!(out, vec![run(1, vec![6, 7, 8]), shutdown(1)]);
        out.clear();
        assert_eq!(s.remove_node(NodeKey(1), &mut out), Some(2));
        // Node 0 has 3 pending (0, 4, 5): nothing yet. Queue: b-rest [3], d [6, 7, 8].
        assert!(out.is_empty());
        s.add_node(NodeKey(9), "popen");
        s.add_node_collection(NodeKey(9), Arc::new(files()));
        s.schedule(&mut out);
        // One test is not enough to start: the replacement takes units until it holds two.
        assert_eq!(
            out,
            vec![run(9, vec![3]), run(9, vec![6, 7, 8]), shutdown(9)]
        );
        out.clear();
        // Re-pend the crash item: b's rest went to node 9, so it becomes its own unit, taken
        // by node 0 once it is down to two pending tests.
        s.mark_test_pending(2, &mut out).unwrap();
        assert!(out.is_empty());
        s.mark_test_complete(NodeKey(0), 0, 0.0, &mut out);
        assert_eq!(out, vec![run(0, vec![2]), shutdown(0)]);
    }
}
