//! The run's state and its one decision step: [`RunState::on`] takes a worker's message or
//! the clock and returns the [`Effect`]s the controller loop carries out (frames to send,
//! signals, replacement workers, events for the reporters). No process, pipe or reporter is
//! reachable from here, so the unit tests (`run_state_tests.rs`) drive it with messages.
//!
//! The handlers live by job: `worker_events` (a worker's events), `collection`, `crash` (a
//! worker that went down), `supervise` (scheduler actions, stop, clocks), `finish` (what the
//! end of the run reads).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use xdist_core::exit::ExitCode;
use xdist_core::protocol::ReportOptions;
use xdist_plugin_api::{ConfigView, NodeView};
use xdist_sched::{Action, Collection, SchedConfig, Scheduling};
use xdist_worker::{Stream, WorkerMsg};

use crate::error::CliError;
use crate::pystep::controller_session::SessionEvent;
use crate::report::events::RunEvent;
use crate::run::controller::RunSetup;
use crate::run::hooks::Hooks;
use crate::run::node::{NodeTable, Pipe, STDERR_TAIL};
use crate::run::state::{CollectReports, Effect, Halt, Ledger, RestartBudget, Stop};

/// What the run state reacts to.
#[derive(Debug)]
pub enum Input {
    /// A worker's message (events, output, its channel or process ending).
    Worker(WorkerMsg),
    /// After each message or 100 ms without one: `signals` Ctrl-C/SIGTERM seen so far.
    Clock { now: Instant, signals: u32 },
}

/// Everything a run knows, mutated only by [`RunState::on`] (and the loop's bookkeeping of
/// the workers it started).
pub struct RunState<'r> {
    pub(super) setup: RunSetup,
    pub(super) hooks: Hooks<'r>,
    /// The scheduler came from a plugin's `make_scheduler`.
    pub(super) plugin_scheduler: bool,
    pub(super) nodes: NodeTable,
    pub(super) sched: Box<dyn Scheduling>,
    pub(super) sched_config: SchedConfig,
    /// The scheduler's actions not sent yet.
    pub(super) actions: Vec<Action>,
    pub(super) collection: Option<Arc<Collection>>,
    pub(super) first_collector: Option<String>,
    pub(super) options: ReportOptions,
    pub(super) session_started: bool,
    pub(super) collection_complete: bool,
    pub(super) collect_reports: CollectReports,
    pub(super) seen_early_warnings: HashSet<(String, Option<String>)>,
    pub(super) deselected: usize,
    pub(super) ledger: Ledger,
    pub(super) shutting_down: bool,
    pub(super) stop: Stop,
    pub(super) fatal: Option<CliError>,
    pub(super) restarts: RestartBudget,
    pub(super) started: Instant,
    pub(super) done_tests: HashSet<usize>,
    /// Tests reported failed because their worker died.
    pub(super) crashed_tests: HashSet<usize>,
    /// The duration history (read once, on first use) and its estimates for the collection.
    pub(super) history: Option<crate::run::durations::History>,
    pub(super) estimates: Option<Arc<Vec<f64>>>,
    pub(super) failed_ids: Vec<String>,
    pub(super) failed_seen: HashSet<String>,
    /// Whole-protocol duration of each test run here, for the duration history.
    pub(super) run_durations: HashMap<usize, f64>,
    /// `--shard`: scheduler index -> worker collection index, and back (MAX: not ours).
    pub(super) shard_map: Option<Vec<usize>>,
    pub(super) shard_rev: Vec<usize>,
    /// Each node's `workeroutput` from its `finished` event (pytest-cov's data).
    pub(super) worker_outputs: HashMap<usize, Map<String, Value>>,
    pub(super) summary: SummaryStep,
    /// The run has pytest-xdist's controller as a pytest process (`ControllerSession`).
    pub(super) has_controller_session: bool,
    /// The exit status the controller session's `pytest_sessionfinish` hooks left.
    pub(super) session_exit: Option<ExitCode>,
    /// A worker's `ready` said the run needs a controller session and it has none: start over.
    pub(super) restart_for_controller: bool,
    /// A worker's `ready` named reasons for a controller session.
    pub(super) controller_reasons_seen: bool,
    /// Nodes whose event channel ended while their process lived on.
    pub(super) lost_channels: Vec<usize>,
    /// Why the workers are spawned rather than forked, for the header (`--start fork`).
    pub(super) spawn_fallback: Option<String>,
    /// The effects decided so far in this step.
    out: Vec<Effect>,
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

/// The run's scheduler (a plugin's `make_scheduler`, else the `--dist` mode's), its
/// configuration, and whether it came from a plugin.
fn scheduler(
    setup: &RunSetup,
    hooks: &Hooks,
    config_view: &ConfigView,
) -> Result<(SchedConfig, Box<dyn Scheduling>, bool), CliError> {
    let config = SchedConfig {
        num_nodes: setup.workers(),
        max_sched_chunk: setup.opts.maxschedchunk,
        loadscope_reorder: setup.opts.loadscope_reorder,
        durations: setup.durations.clone(),
    };
    Ok(match hooks.make_scheduler(config_view, &config)? {
        Some(s) => (config, s, true),
        None => {
            let sched = xdist_sched::make_scheduler(setup.opts.dist, config.clone());
            (config, sched, false)
        }
    })
}

impl<'r> RunState<'r> {
    pub fn new(
        setup: RunSetup,
        hooks: Hooks<'r>,
        config_view: &ConfigView,
        has_controller_session: bool,
    ) -> Result<Self, CliError> {
        let (sched_config, sched, plugin_scheduler) = scheduler(&setup, &hooks, config_view)?;
        Ok(RunState {
            restarts: RestartBudget::new(setup.max_restarts),
            setup,
            hooks,
            plugin_scheduler,
            nodes: NodeTable::default(),
            sched,
            sched_config,
            actions: Vec::new(),
            collection: None,
            first_collector: None,
            options: ReportOptions::default(),
            session_started: false,
            collection_complete: false,
            collect_reports: CollectReports::default(),
            seen_early_warnings: HashSet::new(),
            deselected: 0,
            ledger: Ledger::default(),
            shutting_down: false,
            stop: Stop::default(),
            fatal: None,
            started: Instant::now(),
            done_tests: HashSet::new(),
            crashed_tests: HashSet::new(),
            history: None,
            estimates: None,
            failed_ids: Vec::new(),
            failed_seen: HashSet::new(),
            run_durations: HashMap::new(),
            shard_map: None,
            shard_rev: Vec::new(),
            worker_outputs: HashMap::new(),
            summary: SummaryStep::default(),
            has_controller_session,
            session_exit: None,
            restart_for_controller: false,
            controller_reasons_seen: false,
            lost_channels: Vec::new(),
            spawn_fallback: None,
            out: Vec::new(),
        })
    }

    /// The one decision step: what `input` changes, and what the loop must do about it.
    pub fn on(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Worker(msg) => self.on_message(msg),
            Input::Clock { now, signals } => self.on_clock(now, signals),
        }
        std::mem::take(&mut self.out)
    }

    /// The run is over: every worker is down, a fatal error, or it starts over.
    pub fn ended(&self) -> bool {
        self.nodes.all_down() || self.fatal.is_some() || self.restart_for_controller
    }

    pub(super) fn effect(&mut self, effect: Effect) {
        self.out.push(effect);
    }

    pub(super) fn emit(&mut self, ev: RunEvent) {
        self.out.push(Effect::Emit(ev));
    }

    pub(super) fn send(&mut self, node: usize, cmds: Vec<xdist_core::protocol::Command>) {
        self.out.push(Effect::Send { node, cmds });
    }

    /// What a part of the state decided about stopping.
    pub(super) fn halt(&mut self, halts: Vec<Halt>) {
        for halt in halts {
            match halt {
                Halt::StopAll => self.stop_all(),
                Halt::KillAll => self.effect(Effect::KillAll),
            }
        }
    }

    /// Records a plugin hook failure (exit 3) unless an error is already pending.
    pub(super) fn plugin_result<T>(&mut self, r: Result<T, CliError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.fatal.get_or_insert(e);
                None
            }
        }
    }

    pub(super) fn node_view(&self, i: usize) -> NodeView {
        let n = &self.nodes[i];
        NodeView {
            workerid: n.id.clone(),
            spec: self.setup.specs[n.spec].raw.clone(),
            workerinput: n.workerinput.clone(),
            workerinfo: n.workerinfo.clone(),
        }
    }

    /// `pytest_testnodedown` of node `i` (`error`: why it went down, None when it finished),
    /// in the plugins and in the controller session.
    pub(super) fn node_down(&mut self, i: usize, error: Option<&str>) {
        let view = self.node_view(i);
        let r = self.hooks.testnodedown(&view, error);
        self.plugin_result(r);
        if self.has_controller_session {
            let workeroutput = self.worker_outputs.get(&i).cloned().unwrap_or_default();
            self.effect(Effect::Session(SessionEvent::NodeDown {
                id: view.workerid,
                spec: view.spec,
                workeroutput,
                workerinfo: view.workerinfo,
                error: error.map(str::to_string),
            }));
        }
    }

    /// `TestStarted` or (`finished`) `TestFinished` for test `index` on node `i`.
    pub(super) fn emit_test_event(&mut self, i: usize, index: usize, finished: bool) {
        let Some(nodeid) = (self.collection.as_ref()).and_then(|c| c.ids.get(index).cloned())
        else {
            return;
        };
        let worker = self.nodes[i].id.clone();
        self.emit(match finished {
            false => RunEvent::TestStarted { worker, nodeid },
            true => RunEvent::TestFinished { worker, nodeid },
        });
    }

    /// Fork mode: the collection is known before the second worker starts; never start more
    /// than `n` workers, the scheduler's units (`-n 8 test_one.py::test_x` starts one).
    pub(super) fn size_to(&mut self, n: usize) {
        self.setup.specs.truncate(n);
        for node in self.nodes.iter_mut() {
            node.workerinput.insert("workercount".into(), json!(n));
        }
        // No node was added yet: the scheduler starts over with the smaller count.
        self.sched_config.num_nodes = n;
        self.sched = xdist_sched::make_scheduler(self.setup.opts.dist, self.sched_config.clone());
    }

    fn on_message(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Events(key, events) => {
                for ev in events {
                    if let Some(ev) = self.shard_in(ev) {
                        self.on_event(key as usize, ev);
                    }
                }
                if let Some(e) = self.hooks.take_error() {
                    self.fatal.get_or_insert(e);
                }
                self.dispatch_actions();
                self.check_finished();
            }
            WorkerMsg::ChannelClosed(key) => {
                let i = key as usize;
                if self.nodes[i].close_channel(Instant::now()) {
                    self.lost_channels.push(i);
                }
                self.maybe_node_down(i);
            }
            WorkerMsg::ChannelFault(key, fault) => {
                let i = key as usize;
                self.nodes[i].pipes.end(Pipe::Channel);
                self.nodes[i].fault = Some(format!("protocol error: {fault}"));
                // A worker that breaks the protocol is failed like a crash.
                self.effect(Effect::Signal {
                    node: i,
                    sig: libc::SIGKILL,
                });
                self.maybe_node_down(i);
            }
            WorkerMsg::Output(key, stream, bytes) => {
                let ends = bytes.ends_line();
                let line = String::from_utf8_lossy(&bytes);
                let line = match ends {
                    true => line.trim_end_matches(['\n', '\r']).to_string(),
                    false => line.into_owned(),
                };
                drop(bytes);
                self.on_output(key as usize, stream, line, ends);
            }
            WorkerMsg::OutputClosed(key, stream) => {
                let i = key as usize;
                self.nodes[i].pipes.end(stream.into());
                self.maybe_node_down(i);
            }
            WorkerMsg::Exited(key, kind) => {
                let i = key as usize;
                self.nodes.set_exited(i, kind, Instant::now());
                self.maybe_node_down(i);
            }
        }
    }

    /// A line (or, not `ends`, a piece of one) worker `i` wrote: shown with `-s`, and its
    /// stderr's last lines kept for a crash report.
    fn on_output(&mut self, i: usize, stream: Stream, line: String, ends: bool) {
        if stream == Stream::Stderr {
            let tail = &mut self.nodes[i].stderr_tail;
            tail.push_back(line.clone());
            if tail.len() > STDERR_TAIL {
                tail.pop_front();
            }
        }
        if self.setup.opts.pytest.capture_no {
            let worker = self.nodes[i].id.clone();
            self.emit(RunEvent::WorkerOutput { worker, line, ends });
        }
    }

    /// What time decides: the summary step, Ctrl-C, hangs, lost channels, and workers whose
    /// streams never ended.
    fn on_clock(&mut self, now: Instant, signals: u32) {
        self.maybe_summarize();
        let halts = self.stop.on_signals(signals, now);
        self.halt(halts);
        self.check_hangs(now);
        self.check_lost_channels(now);
        if self.nodes.any_exited() {
            for i in 0..self.nodes.len() {
                if self.nodes[i].awaits_down() {
                    self.maybe_node_down(i);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "run_state_tests.rs"]
mod tests;
