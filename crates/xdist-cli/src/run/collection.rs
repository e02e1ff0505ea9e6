//! Collection: every worker's must match the first; `--shard` keeps a part of it.

use std::sync::Arc;

use crate::report::events::RunEvent;
use xdist_core::protocol::Command;
use xdist_sched::{Collection, NodeKey};

use crate::pystep::controller_session::SessionEvent;
use crate::run::state::{CollectVerdict, Effect};

use super::run_state::RunState;

impl RunState<'_> {
    /// Worker `i` collected: the first collection is the run's, every other must match it.
    pub(super) fn on_collection(
        &mut self,
        i: usize,
        ids: Vec<String>,
        groups: Vec<Option<String>>,
        deselected: usize,
        lines: Vec<String>,
    ) {
        if self.stopping.shutting_down {
            return;
        }
        let view = self.node_view(i);
        let r = self.hooks.node_collection_finished(&view, &ids);
        self.plugin_result(r);
        if self.controller.has_session {
            let (id, ids) = (view.workerid, ids.clone());
            let event = SessionEvent::CollectionFinished { id, ids };
            self.effect(Effect::Session(event));
        }
        let (ids, groups, not_in_shard) = self.shard_collection(ids, groups);
        if let (Some(s), true) = (
            self.setup.opts.shard,
            self.collection.tests.is_none() && ids.is_empty() && not_in_shard > 0,
        ) {
            let (index, total, collected) = (s.index, s.total, not_in_shard);
            self.emit(RunEvent::EmptyShard {
                index,
                total,
                collected,
            });
        }
        match self.collection.judge(&ids) {
            CollectVerdict::First => {
                self.first_collection(i, ids, groups, deselected + not_in_shard)
            }
            CollectVerdict::Same => {}
            // A replacement that collected differently is never used.
            CollectVerdict::Late => return self.tell(i, Command::Shutdown),
            CollectVerdict::Differs => return self.collection_differs(i, &ids),
        }
        self.schedule_node(i, &lines);
    }

    /// The run's collection, from its first worker to collect.
    fn first_collection(
        &mut self,
        i: usize,
        ids: Vec<String>,
        groups: Vec<Option<String>>,
        deselected: usize,
    ) {
        let collection = Arc::new(Collection { ids, groups });
        let estimates = self.history().and_then(|h| h.estimates(&collection.ids));
        self.durations.estimates = estimates.map(Arc::new);
        if !self.setup.opts.no_durations && !self.dispatch.from_plugin {
            if let Some(d) = self.durations.estimates.clone() {
                // No node was added yet: start over with a duration-aware scheduler.
                self.dispatch.config.durations = Some(d);
                self.dispatch.remake(self.setup.opts.dist);
            }
        }
        self.collection.tests = Some(collection);
        self.collection.collector = Some(self.nodes[i].id.clone());
        self.collection.deselected = deselected;
    }

    /// Worker `i` collected other tests than the first: a collection error, and the run stops.
    fn collection_differs(&mut self, i: usize, ids: &[String]) {
        let Some(first) = self.collection.tests.clone() else {
            return;
        };
        let worker = self.nodes[i].id.clone();
        let first_id = self.collection.collector.as_deref().unwrap_or("gw0");
        let diff = xdist_sched::collection_diff(first_id, &first.ids, &worker, ids);
        // Reported on the worker, not on a test: no node id is kept as failed.
        self.outcomes.ledger.collect_errors += 1;
        let report = crate::report::text::collection_differs_report(&worker, &diff);
        self.emit(RunEvent::CollectReport {
            nodeid: worker.clone(),
            worker,
            report: Box::new(report),
        });
        self.stop_all();
    }

    /// Worker `i`'s collection was accepted: it joins the scheduler, and once every worker
    /// collected the tests start (or collection errors stop the run).
    fn schedule_node(&mut self, i: usize, lines: &[String]) {
        let Some(collection) = self.collection.tests.clone() else {
            return;
        };
        let (key, spec) = (
            NodeKey(self.nodes[i].key),
            &self.setup.specs[self.nodes[i].spec],
        );
        self.dispatch
            .sched
            .add_worker(key, &spec.raw, &self.nodes[i].id);
        self.nodes[i].scheduled = true;
        // Told to end while it started: the scheduler learns it now.
        self.scheduler_learns_end(i);
        self.dispatch
            .sched
            .add_node_collection(key, collection.clone());
        if !self.collection.complete {
            if !self.dispatch.sched.collection_is_completed() {
                return;
            }
            self.collection.complete = true;
            let name = self.dispatch.sched.name();
            let estimates = self.durations.estimates.clone();
            self.emit(RunEvent::CollectionComplete {
                workers: self.setup.workers(),
                items: collection.len(),
                deselected: self.collection.deselected,
                lines: lines.to_vec(),
                scheduler: name.to_string(),
                ids: collection.ids.clone(),
                estimates,
            });
            let go_on = self.session.options.continue_on_collection_errors;
            let stop = &mut self.stopping.stop;
            let halts = stop.on_collection_complete(&self.outcomes.ledger, go_on);
            if !halts.is_empty() {
                return self.halt(halts);
            }
        }
        self.dispatch.schedule();
    }

    /// `--shard`: keeps this shard's tests of a worker's collection (the scheduler sees only
    /// them, indexed 0..m); the first call fixes the index maps.
    pub(super) fn shard_collection(
        &mut self,
        ids: Vec<String>,
        groups: Vec<Option<String>>,
    ) -> (Vec<String>, Vec<Option<String>>, usize) {
        let Some(shard) = self.setup.opts.shard else {
            return (ids, groups, 0);
        };
        let durations = match shard.by {
            crate::cli::args::ShardBy::Duration => self.history().and_then(|h| h.estimates(&ids)),
            crate::cli::args::ShardBy::Hash => None,
        };
        let selected = crate::run::shard::select(&ids, shard, durations.as_deref());
        self.dispatch.shard.fix(&selected, ids.len());
        let out_ids = selected.iter().map(|&w| ids[w].clone()).collect();
        let out_groups = if groups.len() == ids.len() {
            selected.iter().map(|&w| groups[w].clone()).collect()
        } else {
            groups
        };
        (out_ids, out_groups, ids.len() - selected.len())
    }
}
