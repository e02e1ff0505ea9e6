//! `--dist each`: pytest-xdist's `EachScheduling`.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::core::Nodes;
use crate::{Action, Collection, NodeKey, SchedConfig, SchedError, Scheduling};

#[derive(Debug, Default)]
struct EachNode {
    len: usize,
    pending: VecDeque<usize>,
    started: bool,
}

/// Every node runs the whole collection once.
#[derive(Debug)]
pub struct EachScheduling {
    cfg: SchedConfig,
    nodes: Nodes,
    per: Vec<EachNode>,
    collections: usize,
    scheduled: bool,
    /// What dead nodes left behind (their spec, the tests they had not run, crash item
    /// excluded), for replacements with the same spec.
    orphans: VecDeque<(String, Vec<usize>)>,
    /// Full runs still owed: the run was started with `num_nodes` workers, each of which runs
    /// the whole collection once; a node that dies before it was started owes nothing itself,
    /// so its replacement takes the full run.
    owed: usize,
    /// Length of the first collection received.
    coll_len: usize,
}

impl EachScheduling {
    pub fn new(cfg: SchedConfig) -> EachScheduling {
        EachScheduling {
            nodes: Nodes::default(),
            per: Vec::new(),
            collections: 0,
            scheduled: false,
            orphans: VecDeque::new(),
            owed: cfg.num_nodes,
            coll_len: 0,
            cfg,
        }
    }

    fn send(&mut self, slot: usize, indices: Vec<usize>, out: &mut Vec<Action>) {
        if !indices.is_empty() {
            self.per[slot].pending.extend(indices.iter().copied());
            out.push(Action::Run {
                node: self.nodes.list[slot].key,
                indices,
            });
        }
        self.nodes.shutdown(slot, out);
    }

    fn unstarted_alive(&self) -> bool {
        self.nodes
            .list
            .iter()
            .zip(&self.per)
            .any(|(n, p)| n.alive && !n.shutdown && !p.started)
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.tests_finished() {
            self.nodes.shutdown_all(out);
        }
    }
}

impl Scheduling for EachScheduling {
    fn name(&self) -> &'static str {
        "EachScheduling"
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
            && self.orphans.is_empty()
            && !(self.owed > 0 && self.unstarted_alive())
            && self
                .nodes
                .list
                .iter()
                .zip(&self.per)
                .all(|(n, p)| !n.alive || p.pending.len() < 2)
    }

    fn has_pending(&self) -> bool {
        !self.orphans.is_empty()
            || (self.owed > 0 && self.coll_len > 0)
            || self
                .nodes
                .list
                .iter()
                .zip(&self.per)
                .any(|(n, p)| n.alive && !p.pending.is_empty())
    }

    fn add_node(&mut self, node: NodeKey, spec: &str) {
        let slot = self.nodes.add(node, spec);
        if slot >= self.per.len() {
            self.per.resize_with(slot + 1, EachNode::default);
        }
    }

    fn add_node_collection(&mut self, node: NodeKey, collection: Arc<Collection>) {
        let Some(slot) = self.nodes.mark_collected(node) else {
            return;
        };
        self.per[slot].len = collection.len();
        if self.collections == 0 {
            self.coll_len = collection.len();
        }
        self.collections += 1;
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
        let pending = &mut self.per[slot].pending;
        if pending.front() == Some(&index) {
            pending.pop_front();
        } else if let Some(pos) = pending.iter().position(|&i| i == index) {
            // Out of order: only on protocol misuse, a worker runs its queue in order.
            pending.remove(pos);
        }
        self.finish(out);
    }

    fn mark_test_pending(
        &mut self,
        _index: usize,
        _out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        Err(SchedError::Unsupported {
            mode: "EachScheduling",
        })
    }

    fn remove_pending_tests_from_node(
        &mut self,
        _node: NodeKey,
        _indices: &[usize],
        _out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        Err(SchedError::Unsupported {
            mode: "EachScheduling",
        })
    }

    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        let slot = self.nodes.slot(node)?;
        let spec = self.nodes.list[slot].spec.clone();
        self.nodes.remove(slot);
        let mut per = std::mem::take(&mut self.per[slot]);
        let crash = per.pending.pop_front();
        if !per.pending.is_empty() {
            self.orphans.push_back((spec, per.pending.into()));
        }
        self.finish(out);
        crash
    }

    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.collection_is_completed() {
            return;
        }
        self.scheduled = true;
        for slot in 0..self.nodes.list.len() {
            if !self.nodes.usable(slot) || self.per[slot].started {
                continue;
            }
            self.per[slot].started = true;
            let spec = &self.nodes.list[slot].spec;
            let found = self.orphans.iter().position(|(s, _)| s == spec);
            match found.and_then(|pos| self.orphans.remove(pos)) {
                Some((_, items)) => self.send(slot, items, out),
                None if self.owed > 0 => {
                    self.owed -= 1;
                    let all: Vec<usize> = (0..self.per[slot].len).collect();
                    self.send(slot, all, out);
                }
                None => self.nodes.shutdown(slot, out),
            }
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

    #[test]
    fn every_node_runs_everything_then_shuts_down() {
        let (s, out) = started(EachScheduling::new(cfg(2)), 3, 2);
        assert_eq!(
            out,
            vec![
                run(0, vec![0, 1, 2]),
                shutdown(0),
                run(1, vec![0, 1, 2]),
                shutdown(1)
            ]
        );
        assert!(!s.tests_finished());
        assert!(s.has_pending());
    }

    #[test]
    fn replacement_takes_dead_nodes_remaining_items() {
        let (mut s, _) = started(EachScheduling::new(cfg(2)), 4, 2);
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 0, 0.0, &mut out);
        assert_eq!(s.remove_node(NodeKey(0), &mut out), Some(1));
        assert!(!s.tests_finished());
        s.add_node(NodeKey(5), "popen");
        s.add_node_collection(NodeKey(5), Arc::new(collection(4)));
        s.schedule(&mut out);
        assert_eq!(out, vec![run(5, vec![2, 3]), shutdown(5)]);
        assert_eq!(
            s.mark_test_pending(1, &mut out),
            Err(SchedError::Unsupported {
                mode: "EachScheduling"
            })
        );
    }

    #[test]
    fn replacement_without_orphan_gets_nothing() {
        let (mut s, _) = started(EachScheduling::new(cfg(1)), 2, 1);
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 0, 0.0, &mut out);
        assert_eq!(s.remove_node(NodeKey(0), &mut out), Some(1));
        s.add_node(NodeKey(1), "popen");
        s.add_node_collection(NodeKey(1), Arc::new(collection(2)));
        s.schedule(&mut out);
        assert_eq!(out, vec![shutdown(1)]);
        assert!(s.tests_finished());
    }
}
