//! The run state's typed parts: each groups what one job of
//! [`RunState`](super::run_state::RunState) reads and writes, with the small decisions that
//! touch only it, so a handler says `self.outcomes.record(..)` instead of poking three sets.
//! None does I/O; `parts_tests.rs` drives them directly. The node table is `node.rs`'s,
//! `--shard`'s index maps `shard.rs`'s and this run's durations `durations.rs`'s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use xdist_core::exit::ExitCode;
use xdist_core::protocol::{ReportOptions, WarningRecord};
use xdist_plugin_api::ConfigView;
use xdist_sched::{Action, Collection, DistMode, NodeKey, SchedConfig, Scheduling};

use crate::error::CliError;
use crate::run::controller::RunSetup;
use crate::run::hooks::Hooks;
use crate::run::shard::ShardMaps;
use crate::run::state::{
    judge_collection, CollectReports, CollectVerdict, Ledger, RestartBudget, Stop,
};

/// Scheduling: the scheduler (a plugin's `make_scheduler`, else the `--dist` mode's), the
/// configuration it was made with, the actions it decided that are not sent yet, and
/// `--shard`'s maps between its indices and the workers'.
pub(super) struct Dispatch {
    pub(super) sched: Box<dyn Scheduling>,
    pub(super) config: SchedConfig,
    /// The scheduler's actions not sent yet.
    pub(super) actions: Vec<Action>,
    /// The scheduler came from a plugin's `make_scheduler`.
    pub(super) from_plugin: bool,
    pub(super) shard: ShardMaps,
}

impl Dispatch {
    pub(super) fn new(
        setup: &RunSetup,
        hooks: &Hooks,
        config_view: &ConfigView,
    ) -> Result<Self, CliError> {
        let config = SchedConfig {
            num_nodes: setup.workers(),
            max_sched_chunk: setup.opts.maxschedchunk,
            loadscope_reorder: setup.opts.loadscope_reorder,
            durations: setup.durations.clone(),
        };
        let (sched, from_plugin) = match hooks.make_scheduler(config_view, &config)? {
            Some(s) => (s, true),
            None => (
                xdist_sched::make_scheduler(setup.opts.dist, config.clone()),
                false,
            ),
        };
        Ok(Dispatch {
            sched,
            config,
            actions: Vec::new(),
            from_plugin,
            shard: ShardMaps::default(),
        })
    }

    /// The `dist` mode's scheduler made anew from `config` as it is now (a smaller worker
    /// count, duration estimates): only while no node was added yet.
    pub(super) fn remake(&mut self, dist: DistMode) {
        self.sched = xdist_sched::make_scheduler(dist, self.config.clone());
    }

    /// Node `key` leaves the scheduler, its queue back to the others: the test it was
    /// running (its first pending one), if any.
    pub(super) fn remove_node(&mut self, key: NodeKey) -> Option<usize> {
        self.sched.remove_node(key, &mut self.actions)
    }

    /// Test `index` goes back to the queue (it never started); false if the scheduler can't.
    pub(super) fn requeue(&mut self, index: usize) -> bool {
        self.sched
            .mark_test_pending(index, &mut self.actions)
            .is_ok()
    }

    /// Hands out work: once every worker collected, then for each replacement that joins.
    pub(super) fn schedule(&mut self) {
        self.sched.schedule(&mut self.actions);
    }

    /// Node `key` gave back these queued tests (its answer to a steal).
    pub(super) fn gave_back(&mut self, key: NodeKey, indices: &[usize]) {
        let _ = (self.sched).remove_pending_tests_from_node(key, indices, &mut self.actions);
    }

    /// Test `index` ended on node `key` after `seconds`.
    pub(super) fn complete(&mut self, key: NodeKey, index: usize, seconds: f64) {
        (self.sched).mark_test_complete(key, index, seconds, &mut self.actions);
    }
}

/// What the first worker's `ready` fixed for the run: its pytest session started (and with
/// it the run's output), with the options that session parsed.
#[derive(Default)]
pub(super) struct Session {
    pub(super) started: bool,
    pub(super) options: ReportOptions,
    /// Why the workers are spawned rather than forked, for the header (`--start fork`).
    pub(super) spawn_fallback: Option<String>,
}

impl Session {
    /// A worker's session is up with `options`: true for the first, whose options are the run's.
    pub(super) fn start(&mut self, options: &ReportOptions) -> bool {
        if self.started {
            return false;
        }
        self.started = true;
        self.options = options.clone();
        true
    }
}

/// The run's collection: the first worker's (this shard's part with `--shard`), which every
/// other worker's must match, and whether every worker's is in.
#[derive(Default)]
pub(super) struct RunCollection {
    pub(super) tests: Option<Arc<Collection>>,
    /// The worker whose collection it is (named when another differs).
    pub(super) collector: Option<String>,
    /// Every worker collected and joined the scheduler.
    pub(super) complete: bool,
    pub(super) deselected: usize,
}

impl RunCollection {
    /// What another worker's collection `ids` means.
    pub(super) fn judge(&self, ids: &[String]) -> CollectVerdict {
        let first = self.tests.as_ref().map(|c| c.ids.as_slice());
        judge_collection(first, ids, self.complete)
    }

    /// The node id of test `index`, once collected.
    pub(super) fn nodeid(&self, index: usize) -> Option<String> {
        self.tests.as_ref()?.ids.get(index).cloned()
    }

    /// How many tests were collected (0 before any worker collected).
    pub(super) fn len(&self) -> usize {
        self.tests.as_ref().map_or(0, |c| c.len())
    }
}

/// What every worker sends alike and is shown once: collection reports, warnings outside
/// tests, and what workers logged after their session.
#[derive(Default)]
pub(super) struct ShownOnce {
    collect_reports: CollectReports,
    early_warnings: HashSet<(String, Option<String>)>,
    late_logs: HashSet<String>,
}

impl ShownOnce {
    /// Whether worker `i`'s collection report is news (see [`CollectReports`]).
    pub(super) fn news_collect_report(&mut self, i: usize, nodeid: &str, outcome: &str) -> bool {
        self.collect_reports.first_time(i, nodeid, outcome)
    }

    /// A test's warnings are its worker's own; the others come from every worker.
    pub(super) fn news_warning(&mut self, w: &WarningRecord) -> bool {
        w.when == "runtest" || (self.early_warnings).insert((w.message.clone(), w.location.clone()))
    }

    /// What a worker logged; `late`: after its session (pytest_unconfigure's warnings): in
    /// fork mode every child inherits what the fork server's collection decided.
    pub(super) fn news_log(&mut self, late: bool, text: &str) -> bool {
        !late || self.late_logs.insert(text.to_string())
    }
}

/// What a counted failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// A test's report (not an expected failure).
    Test,
    /// The test a worker died running (not counted for `--maxfail`).
    Crash,
    /// A collection error.
    Collection,
}

/// What happened to the tests: the counts that fail the run, which tests ended, the node
/// ids that failed (for `--looponfail`), and the workers' `workeroutput`.
#[derive(Default)]
pub(super) struct Outcomes {
    pub(super) ledger: Ledger,
    done: HashSet<usize>,
    /// Tests reported failed because their worker died.
    crashed: HashSet<usize>,
    /// In the order they were reported, without repeats.
    failed: Vec<String>,
    failed_seen: HashSet<String>,
    /// Each node's `workeroutput` from its `finished` event (pytest-cov's data).
    pub(super) worker_outputs: HashMap<usize, Map<String, Value>>,
}

impl Outcomes {
    /// A failure of `nodeid`: counted, and its id kept once.
    pub(super) fn record(&mut self, failure: Failure, nodeid: &str) {
        match failure {
            Failure::Test => self.ledger.failures += 1,
            Failure::Crash => self.ledger.crashes += 1,
            Failure::Collection => self.ledger.collect_errors += 1,
        }
        if self.failed_seen.insert(nodeid.to_string()) {
            self.failed.push(nodeid.to_string());
        }
    }

    /// Test `index` ended (`done`).
    pub(super) fn done(&mut self, index: usize) {
        self.done.insert(index);
    }

    pub(super) fn is_done(&self, index: usize) -> bool {
        self.done.contains(&index)
    }

    /// Test `index` was reported failed with its worker's crash.
    pub(super) fn crashed(&mut self, index: usize) {
        self.crashed.insert(index);
    }

    /// How many of `collected` tests neither ended nor crashed.
    pub(super) fn not_ended(&self, collected: usize) -> usize {
        collected.saturating_sub(self.done.union(&self.crashed).count())
    }

    /// The failed node ids, for the run's caller.
    pub(super) fn take_failed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.failed)
    }
}

/// Why and how the run stops: stop reasons and Ctrl-C (`Stop`), the error it ends with,
/// whether every worker was told to end, and `--max-worker-restart`.
pub(super) struct Stopping {
    pub(super) stop: Stop,
    /// The run ends with this error (exit 3 for a plugin's, else an internal error).
    pub(super) fatal: Option<CliError>,
    /// Queued work was dropped or is done: no more tests go out.
    pub(super) shutting_down: bool,
    pub(super) restarts: RestartBudget,
}

impl Stopping {
    pub(super) fn new(max_restarts: Option<usize>) -> Self {
        Stopping {
            stop: Stop::default(),
            fatal: None,
            shutting_down: false,
            restarts: RestartBudget::new(max_restarts),
        }
    }

    /// An error that ends the run, unless one already does (a later one follows from it).
    pub(super) fn fail(&mut self, e: CliError) {
        self.fatal.get_or_insert(e);
    }
}

/// pytest-xdist's Python controller as this run stands in for it: the controller session
/// (when the run has one), or the summary step's inputs and where it runs.
pub(super) struct ControllerSide {
    /// The run has pytest-xdist's controller as a pytest process (`ControllerSession`).
    pub(super) has_session: bool,
    /// The exit status the controller session's `pytest_sessionfinish` hooks left.
    pub(super) session_exit: Option<ExitCode>,
    /// A worker's `ready` said the run needs a controller session and it has none: start over.
    pub(super) start_over: bool,
    /// A worker's `ready` named reasons for a controller session.
    pub(super) reasons_seen: bool,
    pub(super) summary: SummaryStep,
}

/// The summary step's inputs gathered during the run, and where it runs.
#[derive(Default)]
pub(super) struct SummaryStep {
    /// `summary_plugins` from the workers' `ready`, and every report serialized for them.
    pub(super) plugins: Vec<String>,
    /// `controller_plugins` from the workers' `ready`: the summary step replays the run.
    pub(super) controller_plugins: Vec<String>,
    pub(super) reports: Vec<String>,
    pub(super) warnings: Vec<String>,
    /// The worker asked to `linger` for the summary step, whether `summarize` went out,
    /// and its answer (text, or the error that stopped the hooks).
    pub(super) node: Option<usize>,
    pub(super) sent: bool,
    pub(super) result: Option<Result<String, String>>,
}

impl ControllerSide {
    pub(super) fn new(has_session: bool) -> Self {
        ControllerSide {
            has_session,
            session_exit: None,
            start_over: false,
            reasons_seen: false,
            summary: SummaryStep::default(),
        }
    }

    /// The summary step needs every report (see `summary.rs`).
    pub(super) fn wants_reports(&self) -> bool {
        !self.summary.plugins.is_empty()
            || !self.summary.controller_plugins.is_empty()
            || self.has_session
    }

    /// The summary step runs in the last worker (it `linger`s for it), unless `no_summary`.
    /// Controller-only plugins need the summary step's own process anyway, and a controller
    /// session runs the hooks itself.
    pub(super) fn summary_in_worker(&self, no_summary: bool) -> bool {
        !self.summary.plugins.is_empty()
            && !no_summary
            && self.summary.controller_plugins.is_empty()
            && !self.has_session
    }
}

#[cfg(test)]
#[path = "parts_tests.rs"]
mod tests;
