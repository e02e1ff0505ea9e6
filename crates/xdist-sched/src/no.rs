//! `--dist no`: one node runs the whole collection in order.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::core::{Nodes, TState, Tests};
use crate::{Action, Collection, NodeKey, SchedConfig, SchedError, Scheduling};

/// The first ready node gets every test (in collection order) followed by `Shutdown`; every
/// other node is shut down at once. Work left by a crash (or re-pended) goes to the next node
/// that joins.
#[derive(Debug)]
pub struct NoScheduling {
    cfg: SchedConfig,
    nodes: Nodes,
    collections: usize,
    collection: Option<Arc<Collection>>,
    tests: Tests,
    queue: VecDeque<usize>,
    scheduled: bool,
}

impl NoScheduling {
    pub fn new(cfg: SchedConfig) -> NoScheduling {
        NoScheduling {
            cfg,
            nodes: Nodes::default(),
            collections: 0,
            collection: None,
            tests: Tests::default(),
            queue: VecDeque::new(),
            scheduled: false,
        }
    }

    /// Give the whole queue to the first usable node, shut the others down.
    fn pump(&mut self, out: &mut Vec<Action>) {
        if !self.scheduled {
            return;
        }
        for slot in self.nodes.usable_slots() {
            if !self.queue.is_empty() {
                let node = &mut self.nodes.list[slot];
                let indices: Vec<usize> = self.queue.drain(..).collect();
                for &i in &indices {
                    self.tests.assign(&mut node.lane, slot, i);
                }
                out.push(Action::Run {
                    node: node.key,
                    indices,
                });
            }
            self.nodes.shutdown(slot, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.tests_finished() {
            self.nodes.shutdown_all(out);
        }
    }
}

impl Scheduling for NoScheduling {
    fn name(&self) -> &'static str {
        "NoScheduling"
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
        self.tests
            .take(&mut self.nodes.list[slot].lane, slot, index, TState::Done);
        self.finish(out);
    }

    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError> {
        if !self.scheduled || index >= self.tests.len() {
            return Err(SchedError::UnknownTest(index));
        }
        if matches!(self.tests.state[index], TState::Done | TState::Crashed) {
            self.tests.state[index] = TState::Waiting;
            self.queue.push_front(index);
            self.pump(out);
            self.finish(out);
        }
        Ok(())
    }

    fn remove_pending_tests_from_node(
        &mut self,
        _node: NodeKey,
        _indices: &[usize],
        _out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        Err(SchedError::Unsupported {
            mode: "NoScheduling",
        })
    }

    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        let slot = self.nodes.slot(node)?;
        let items = self.tests.drain(&mut self.nodes.list[slot].lane, slot);
        self.nodes.remove(slot);
        let crash = items.first().copied();
        if let Some(c) = crash {
            self.tests.state[c] = TState::Crashed;
            for &i in &items[1..] {
                self.tests.state[i] = TState::Waiting;
                self.queue.push_back(i);
            }
            self.pump(out);
        }
        self.finish(out);
        crash
    }

    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.collection_is_completed() {
            return;
        }
        if !self.scheduled {
            let n = self.collection.as_ref().map_or(0, |c| c.len());
            self.tests = Tests::new(n, None);
            self.queue = (0..n).collect();
            self.scheduled = true;
        }
        self.pump(out);
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

    #[test]
    fn first_node_runs_everything() {
        let (mut s, out) = started(NoScheduling::new(cfg(2)), 3, 2);
        assert_eq!(out, vec![run(0, vec![0, 1, 2]), shutdown(0), shutdown(1)]);
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 0, 0.0, &mut out);
        assert_eq!(s.remove_node(NodeKey(0), &mut out), Some(1));
        s.mark_test_pending(1, &mut out).unwrap();
        s.add_node(NodeKey(3), "popen");
        s.add_node_collection(NodeKey(3), Arc::new(collection(3)));
        s.schedule(&mut out);
        assert_eq!(out, vec![run(3, vec![1, 2]), shutdown(3)]);
    }
}
