//! `--dist load`: pytest-xdist's `LoadScheduling`.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::core::{locality_order, Nodes, TState, Tests};
use crate::{Action, Collection, NodeKey, SchedConfig, SchedError, Scheduling};

/// Tests handed out in chunks from one global queue; nodes are refilled as they complete tests.
#[derive(Debug)]
pub struct LoadScheduling {
    cfg: SchedConfig,
    nodes: Nodes,
    collections: usize,
    collection: Option<Arc<Collection>>,
    tests: Tests,
    queue: VecDeque<usize>,
    /// Sum of the estimated durations (µs) of the tests in `queue`.
    queued_est: u64,
    scheduled: bool,
    max_chunk: usize,
}

impl LoadScheduling {
    pub fn new(cfg: SchedConfig) -> LoadScheduling {
        LoadScheduling {
            cfg,
            nodes: Nodes::default(),
            collections: 0,
            collection: None,
            tests: Tests::default(),
            queue: VecDeque::new(),
            queued_est: 0,
            scheduled: false,
            max_chunk: 0,
        }
    }

    /// Sends up to `count` tests from the front of the queue. With duration history, stops
    /// early once the node holds two tests and the next one would take its estimated work over
    /// `cap` (µs): the queue is longest first, so long tests go out one at a time and spread
    /// over the nodes instead of filling one node's chunk.
    fn send(&mut self, slot: usize, count: usize, cap: u64, out: &mut Vec<Action>) {
        let mut indices: Vec<usize> = Vec::new();
        self.take(slot, count, cap, &mut indices);
        if !indices.is_empty() {
            out.push(Action::Run {
                node: self.nodes.list[slot].key,
                indices,
            });
        }
    }

    /// Moves up to `count` tests from the queue to the node, appending them to `indices`.
    fn take(&mut self, slot: usize, count: usize, cap: u64, indices: &mut Vec<usize>) {
        let node = &mut self.nodes.list[slot];
        let mut taken = 0;
        while taken < count {
            let Some(&i) = self.queue.front() else {
                break;
            };
            let est = self.tests.est[i];
            if self.tests.timed && node.lane.live >= 2 && node.lane.est + est > cap {
                break;
            }
            self.queue.pop_front();
            self.queued_est -= est.min(self.queued_est);
            self.tests.assign(&mut node.lane, slot, i);
            indices.push(i);
            taken += 1;
        }
    }

    /// pytest-xdist's `check_schedule(node, duration)`.
    fn check_schedule(&mut self, slot: usize, duration: f64, out: &mut Vec<Action>) {
        if !self.scheduled || !self.nodes.usable(slot) {
            return;
        }
        if self.queue.is_empty() {
            self.nodes.shutdown(slot, out);
            return;
        }
        let num_nodes = self.nodes.alive_count().max(1);
        let pending = self.queue.len();
        let min_ = (pending / num_nodes / 4).max(2);
        let max_ = (pending / num_nodes / 2).max(2);
        let np = self.nodes.list[slot].lane.live;
        if np < min_ {
            if duration >= 0.1 && np >= 2 {
                return;
            }
            let num_send = max_ - np;
            let chunk = 2usize.saturating_sub(np).max(self.max_chunk);
            let cap = self.queued_est / num_nodes as u64 / 2;
            self.send(slot, num_send.min(chunk), cap, out);
        }
    }

    fn check_all(&mut self, out: &mut Vec<Action>) {
        for slot in 0..self.nodes.list.len() {
            self.check_schedule(slot, 0.0, out);
        }
    }

    fn initial(&mut self, out: &mut Vec<Action>) {
        let Some(coll) = self.collection.clone() else {
            return;
        };
        let n = coll.len();
        self.tests = Tests::new(n, self.cfg.durations.as_deref().map(|d| d.as_slice()));
        self.queue = if self.tests.timed {
            locality_order(&coll.ids, &self.tests.est).into()
        } else {
            (0..n).collect()
        };
        self.queued_est = self.tests.est.iter().sum();
        self.max_chunk = self.cfg.max_sched_chunk.unwrap_or(n);
        self.scheduled = true;
        let usable = self.nodes.usable_slots();
        let k = usable.len();
        if k == 0 {
            return;
        }
        if n < 2 * k {
            // Round robin, one test at a time; nodes that get nothing are not needed.
            let mut per: Vec<Vec<usize>> = vec![Vec::new(); k];
            for (i, idx) in self.queue.drain(..).enumerate() {
                per[i % k].push(idx);
            }
            self.queued_est = 0;
            for (j, indices) in per.into_iter().enumerate() {
                let slot = usable[j];
                if indices.is_empty() {
                    self.nodes.shutdown(slot, out);
                    continue;
                }
                let node = &mut self.nodes.list[slot];
                for &i in &indices {
                    self.tests.assign(&mut node.lane, slot, i);
                }
                out.push(Action::Run {
                    node: node.key,
                    indices,
                });
            }
        } else {
            let chunk = (n / k / 4).min(self.max_chunk).max(2);
            if self.tests.timed {
                // One test each (longest first), then the rest of each chunk in reverse node
                // order, so the first two long tests do not land on one node.
                let cap = self.queued_est / k as u64 / 4;
                let mut per: Vec<Vec<usize>> = vec![Vec::new(); k];
                for (j, &slot) in usable.iter().enumerate() {
                    self.take(slot, 1, cap, &mut per[j]);
                }
                for (j, &slot) in usable.iter().enumerate().rev() {
                    self.take(slot, chunk - 1, cap, &mut per[j]);
                }
                for (j, indices) in per.into_iter().enumerate() {
                    if !indices.is_empty() {
                        out.push(Action::Run {
                            node: self.nodes.list[usable[j]].key,
                            indices,
                        });
                    }
                }
            } else {
                for &slot in &usable {
                    self.send(slot, chunk, u64::MAX, out);
                }
            }
        }
        if self.queue.is_empty() {
            for &slot in &usable {
                self.nodes.shutdown(slot, out);
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.tests_finished() {
            self.nodes.shutdown_all(out);
        }
    }
}

impl Scheduling for LoadScheduling {
    fn name(&self) -> &'static str {
        "LoadScheduling"
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
        duration: f64,
        out: &mut Vec<Action>,
    ) {
        let Some(slot) = self.nodes.slot(node) else {
            return;
        };
        let lane = &mut self.nodes.list[slot].lane;
        self.tests.take(lane, slot, index, TState::Done);
        self.check_schedule(slot, duration, out);
        self.finish(out);
    }

    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError> {
        if !self.scheduled || index >= self.tests.len() {
            return Err(SchedError::UnknownTest(index));
        }
        match self.tests.state[index] {
            TState::Waiting | TState::OnNode(_) => return Ok(()),
            TState::Done | TState::Crashed => {}
        }
        self.tests.state[index] = TState::Waiting;
        self.queue.push_front(index);
        self.queued_est += self.tests.est[index];
        self.check_all(out);
        self.finish(out);
        Ok(())
    }

    fn remove_pending_tests_from_node(
        &mut self,
        _node: NodeKey,
        _indices: &[usize],
        _out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        Err(SchedError::Unsupported {
            mode: "LoadScheduling",
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
                self.queued_est += self.tests.est[i];
            }
            self.check_all(out);
        }
        self.finish(out);
        crash
    }

    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.collection_is_completed() {
            return;
        }
        if self.scheduled {
            self.check_all(out);
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

    #[test]
    fn chunks_100_tests_over_4_nodes() {
        let (mut s, out) = started(LoadScheduling::new(cfg(4)), 100, 4);
        assert_eq!(out.len(), 4);
        for (i, a) in out.iter().enumerate() {
            assert_eq!(a, &run(i as u32, (i * 6..i * 6 + 6).collect()));
        }
        assert_eq!(s.queue.len(), 76);
        assert!(!s.tests_finished());
        assert!(s.has_pending());
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 0, 0.01, &mut out);
        // pending 76 -> min_ = max(2, 76/4/4) = 4, node has 5: nothing.
        assert!(out.is_empty());
    }

    #[test]
    fn six_tests_two_nodes_worked_example() {
        let (mut s, out) = started(LoadScheduling::new(cfg(2)), 6, 2);
        assert_eq!(out, vec![run(0, vec![0, 1]), run(1, vec![2, 3])]);
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 0, 0.01, &mut out);
        assert_eq!(out, vec![run(0, vec![4])]);
        out.clear();
        s.mark_test_complete(NodeKey(0), 1, 0.01, &mut out);
        assert_eq!(out, vec![run(0, vec![5])]);
        out.clear();
        s.mark_test_complete(NodeKey(0), 4, 0.01, &mut out);
        assert_eq!(out, vec![shutdown(0)]);
        out.clear();
        s.mark_test_complete(NodeKey(1), 2, 0.01, &mut out);
        assert_eq!(out, vec![shutdown(1)]);
        assert!(s.tests_finished());
    }

    #[test]
    fn round_robin_when_few_tests() {
        let (s, out) = started(LoadScheduling::new(cfg(3)), 5, 3);
        assert_eq!(
            out,
            vec![
                run(0, vec![0, 3]),
                run(1, vec![1, 4]),
                run(2, vec![2]),
                shutdown(0),
                shutdown(1),
                shutdown(2)
            ]
        );
        assert!(!s.tests_finished(), "nodes 0 and 1 hold two tests each");
        let (_, out) = started(LoadScheduling::new(cfg(3)), 2, 3);
        assert_eq!(
            out,
            vec![
                run(0, vec![0]),
                run(1, vec![1]),
                shutdown(2),
                shutdown(0),
                shutdown(1)
            ]
        );
    }

    #[test]
    fn sixteen_tests_two_nodes_chunks_of_two() {
        let (_, out) = started(LoadScheduling::new(cfg(2)), 16, 2);
        assert_eq!(out, vec![run(0, vec![0, 1]), run(1, vec![2, 3])]);
    }

    #[test]
    fn slow_test_waits_while_two_pending() {
        let (mut s, out) = started(LoadScheduling::new(cfg(2)), 200, 2);
        // chunk = 200 / 2 / 4 = 25 each; 150 queued: min_ = 18, max_ = 37.
        assert_eq!(
            out,
            vec![run(0, (0..25).collect()), run(1, (25..50).collect())]
        );
        let mut out = Vec::new();
        for i in 0..7 {
            s.mark_test_complete(NodeKey(0), i, 0.01, &mut out);
        }
        assert!(out.is_empty(), "18 pending is not below min_");
        s.mark_test_complete(NodeKey(0), 7, 0.5, &mut out);
        assert!(out.is_empty(), "slow test and >= 2 pending: wait");
        s.mark_test_complete(NodeKey(0), 8, 0.01, &mut out);
        // 16 pending < 18: send min(37 - 16, max(0, 200)) = 21.
        assert_eq!(out, vec![run(0, (50..71).collect())]);
    }

    #[test]
    fn max_sched_chunk_limits_refill() {
        let mut c = cfg(2);
        c.max_sched_chunk = Some(1);
        let (mut s, out) = started(LoadScheduling::new(c), 100, 2);
        assert_eq!(out, vec![run(0, vec![0, 1]), run(1, vec![2, 3])]);
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 0, 0.01, &mut out);
        assert_eq!(out, vec![run(0, vec![4])]);
        out.clear();
        s.mark_test_complete(NodeKey(0), 1, 0.01, &mut out);
        assert_eq!(out, vec![run(0, vec![5])]);
    }

    #[test]
    fn crash_requeues_rest_and_reports_running_test() {
        let (mut s, _) = started(LoadScheduling::new(cfg(2)), 6, 2);
        let mut out = Vec::new();
        let crash = s.remove_node(NodeKey(0), &mut out);
        assert_eq!(crash, Some(0));
        // [1] goes to the end of the queue: [4, 5, 1]; node 1 has 2 pending (min_ = 2): nothing.
        assert!(out.is_empty());
        assert_eq!(s.queue, VecDeque::from(vec![4, 5, 1]));
        s.mark_test_pending(0, &mut out).unwrap();
        assert_eq!(s.queue, VecDeque::from(vec![0, 4, 5, 1]));
        // A replacement joins.
        s.add_node(NodeKey(7), "popen");
        s.add_node_collection(NodeKey(7), Arc::new(collection(6)));
        s.schedule(&mut out);
        assert_eq!(out, vec![run(7, vec![0, 4])]);
    }

    #[test]
    fn durations_start_longest_first() {
        let mut c = cfg(2);
        c.durations = Some(Arc::new(vec![0.1, 5.0, 0.2, 3.0, 0.0, 9.0]));
        let (_, out) = started(LoadScheduling::new(c), 6, 2);
        // Longest first, but the two longest on different nodes.
        assert_eq!(out, vec![run(0, vec![5, 2]), run(1, vec![1, 3])]);
    }

    #[test]
    fn durations_spread_long_tests_collected_last() {
        // 190 quick tests, then 10 long ones (0.5 .. 2.0 s), longest last: the bench's skewed
        // suite. Without the time cap node 0 got all ten long tests in its first chunk.
        let long = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 1.8, 2.0];
        let mut d = vec![0.005; 190];
        d.extend(long);
        let mut c = cfg(2);
        c.durations = Some(Arc::new(d));
        let (mut s, out) = started(LoadScheduling::new(c), 200, 2);
        // 2.0 then 1.2 on node 0, 1.8 then 1.5 on node 1.
        assert_eq!(out, vec![run(0, vec![199, 196]), run(1, vec![198, 197])]);
        // Node 1 finishes 1.8 s: it gets the next longest (1.0 s) alone, not a chunk of them.
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(1), 198, 1.8, &mut out);
        assert_eq!(out, vec![run(1, vec![195])]);
        // Node 0 finishes 2.0 s: the 0.9 s test.
        let mut out = Vec::new();
        s.mark_test_complete(NodeKey(0), 199, 2.0, &mut out);
        assert_eq!(out, vec![run(0, vec![194])]);
    }

    #[test]
    fn empty_collection_shuts_down() {
        let (s, out) = started(LoadScheduling::new(cfg(2)), 0, 2);
        assert_eq!(out, vec![shutdown(0), shutdown(1)]);
        assert!(s.tests_finished());
        assert!(!s.has_pending());
    }
}
