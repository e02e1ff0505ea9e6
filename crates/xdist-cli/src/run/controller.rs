//! The controller loop: the one place that owns the state of a run.
//!
//! It starts the workers, then reacts to [`WorkerMsg`]s one at a time: it feeds the
//! scheduler, sends the scheduler's [`Action`]s to workers, detects crashes and replaces
//! workers, counts failures for `-x`/`--maxfail`, and turns everything into [`RunEvent`]s
//! for the reporters. Nothing else mutates run state.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::events::{Reporter, RunEvent};
use serde_json::{json, Map, Value};
use xdist_core::exit::ExitCode;
use xdist_core::protocol::ReportOptions;
use xdist_core::spec::XSpec;
use xdist_plugin_api::host::PluginHost;
use xdist_plugin_api::{ConfigView, NodeView};
use xdist_sched::{Action, Collection, SchedConfig, Scheduling};
use xdist_worker::{Stream, WorkerMsg};

use crate::cli::args::RunOptions;
use crate::error::CliError;
use crate::pystep::controller_session::ControllerSession;
use crate::run::node::{Node, STDERR_TAIL};
use crate::run::state::{CollectReports, Ledger, RestartBudget, Stop};

/// How often `RunEvent::Tick` is sent while a reporter wants ticks (a live status area).
pub(super) const TICK: Duration = Duration::from_millis(150);
/// What a finished run tells its caller (loop-on-fail needs the failures).
pub struct RunOutcome {
    pub exit: i32,
    /// Node ids that failed or errored, in the order they were reported, without repeats.
    pub failed: Vec<String>,
    pub collection_failed: bool,
    /// Workers named plugins or conftests that act on pytest-xdist's controller: run again,
    /// with a `ControllerSession` (nothing was reported yet).
    pub needs_controller_session: bool,
    /// A worker named reasons for the controller session this run had.
    pub controller_session_used: bool,
}

/// Everything fixed before the first worker starts.
pub struct RunSetup {
    pub opts: RunOptions,
    pub python: PathBuf,
    pub cwd: PathBuf,
    /// One worker per spec (`-n N` is N x popen).
    pub specs: Vec<XSpec>,
    /// pytest's arguments rewritten relative to the rsync roots, for remote and `chdir=`
    /// workers (None: they get the arguments as given).
    pub remote_args: Option<Vec<String>>,
    /// The shared secret for `socket=` workers (`XDIST_TOKEN`).
    pub token: Option<String>,
    pub max_restarts: Option<usize>,
    pub testrunuid: String,
    pub run_basetemp: Option<PathBuf>,
    pub color: bool,
    pub width: usize,
    pub mainargv: Vec<String>,
    pub durations: Option<Arc<Vec<f64>>>,
    /// Identifies this invocation (arguments and directory) for the collection-size memory.
    pub args_key: Option<String>,
    /// `--hang-timeout` / ini `hang_timeout`: a test running longer has its worker killed.
    pub hang_timeout: Option<Duration>,
    /// How local workers start (`--start`).
    pub start: crate::cli::args::StartMode,
}

impl RunSetup {
    /// The number of workers the run starts with.
    pub fn workers(&self) -> usize {
        self.specs.len()
    }
}

pub struct Controller<'r> {
    pub(super) setup: RunSetup,
    pub(super) host: &'r PluginHost,
    pub(super) config_view: ConfigView,
    /// The scheduler came from a plugin's `make_scheduler`.
    pub(super) plugin_scheduler: bool,
    pub(super) tx: Sender<WorkerMsg>,
    pub(super) rx: Receiver<WorkerMsg>,
    pub(super) nodes: Vec<Node>,
    pub(super) next_gw: usize,
    pub(super) sched: Box<dyn Scheduling>,
    pub(super) collection: Option<Arc<Collection>>,
    pub(super) first_collector: Option<String>,
    pub(super) reporters: Vec<&'r mut dyn Reporter>,
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
    pub(super) actions: Vec<Action>,
    pub(super) done_tests: HashSet<usize>,
    /// Tests reported failed because their worker died.
    pub(super) crashed_tests: HashSet<usize>,
    pub(super) sched_config: SchedConfig,
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
    /// Nodes whose process exited: until all have, no node needs a per-message look.
    pub(super) exited_nodes: usize,
    /// Each node's `workeroutput` from its `finished` event (pytest-cov's data).
    pub(super) worker_outputs: HashMap<usize, Map<String, Value>>,
    /// `summary_plugins` from the workers' `ready`, and every report serialized for them.
    pub(super) summary_plugins: Vec<String>,
    /// `controller_plugins` from the workers' `ready`: the summary step replays the run.
    pub(super) controller_plugins: Vec<String>,
    pub(super) summary_reports: Vec<String>,
    pub(super) summary_warnings: Vec<String>,
    /// The worker asked to `linger` for the summary step, whether `summarize` went out,
    /// and its answer (text, or the error that stopped the hooks).
    pub(super) summary_node: Option<usize>,
    pub(super) summary_sent: bool,
    pub(super) summary_result: Option<Result<String, String>>,
    /// pytest-xdist's controller as a pytest process, when the run needs one.
    pub(super) controller_session: Option<ControllerSession>,
    /// The exit status the controller session's `pytest_sessionfinish` hooks left.
    pub(super) session_exit: Option<ExitCode>,
    /// A worker's `ready` said the run needs one and it has none: start over.
    pub(super) restart_for_controller: bool,
    /// A worker's `ready` named reasons for a controller session.
    pub(super) controller_reasons_seen: bool,
    /// Nodes whose event channel ended while their process lived on.
    pub(super) lost_channels: Vec<usize>,
    /// The fork server, in fork mode (`--start fork`).
    pub(super) zygote: crate::run::zygote::Zygote,
}

/// The run's scheduler (a plugin's `make_scheduler`, else the `--dist` mode's), its
/// configuration, and whether it came from a plugin.
fn scheduler(
    setup: &RunSetup,
    host: &PluginHost,
    config_view: &ConfigView,
) -> Result<(SchedConfig, Box<dyn Scheduling>, bool), CliError> {
    let config = SchedConfig {
        num_nodes: setup.workers(),
        max_sched_chunk: setup.opts.maxschedchunk,
        loadscope_reorder: setup.opts.loadscope_reorder,
        durations: setup.durations.clone(),
    };
    let plugin =
        (host.make_scheduler(config_view, &config)).map_err(crate::cli::plugins::hook_error)?;
    Ok(match plugin {
        Some(s) => (config, s, true),
        None => {
            let sched = xdist_sched::make_scheduler(setup.opts.dist, config.clone());
            (config, sched, false)
        }
    })
}

impl<'r> Controller<'r> {
    pub fn new(
        setup: RunSetup,
        host: &'r PluginHost,
        config_view: ConfigView,
        reporters: Vec<&'r mut dyn Reporter>,
    ) -> Result<Self, CliError> {
        let (tx, rx) = mpsc::channel();
        let restarts = RestartBudget::new(setup.max_restarts);
        let (config, sched, plugin_scheduler) = scheduler(&setup, host, &config_view)?;
        // A plugin's scheduler may want every worker asked for: no sizing then.
        let dist = match plugin_scheduler {
            true => xdist_sched::DistMode::Each,
            false => setup.opts.dist,
        };
        let zygote = crate::run::zygote::Zygote::new(setup.start, dist);
        Ok(Controller {
            setup,
            host,
            config_view,
            plugin_scheduler,
            tx,
            rx,
            nodes: Vec::new(),
            next_gw: 0,
            sched,
            collection: None,
            first_collector: None,
            reporters,
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
            restarts,
            started: Instant::now(),
            actions: Vec::new(),
            done_tests: HashSet::new(),
            crashed_tests: HashSet::new(),
            sched_config: config,
            history: None,
            estimates: None,
            run_durations: HashMap::new(),
            shard_map: None,
            shard_rev: Vec::new(),
            exited_nodes: 0,
            worker_outputs: HashMap::new(),
            summary_plugins: Vec::new(),
            controller_plugins: Vec::new(),
            summary_reports: Vec::new(),
            summary_warnings: Vec::new(),
            summary_node: None,
            summary_sent: false,
            summary_result: None,
            controller_session: None,
            session_exit: None,
            restart_for_controller: false,
            controller_reasons_seen: false,
            lost_channels: Vec::new(),
            zygote,
            failed_ids: Vec::new(),
            failed_seen: HashSet::new(),
        })
    }

    /// Runs with `session` playing pytest-xdist's controller (see `controller_session.rs`).
    pub fn with_controller_session(mut self, session: Option<ControllerSession>) -> Self {
        self.controller_session = session;
        self
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

    /// Records a plugin hook failure (exit 3) unless an error is already pending.
    pub(super) fn plugin_result<T>(
        &mut self,
        r: Result<T, xdist_plugin_api::host::PluginError>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                if self.fatal.is_none() {
                    self.fatal = Some(crate::cli::plugins::hook_error(e));
                }
                None
            }
        }
    }

    pub(super) fn check_plugin_scheduler(&mut self) {
        if let Some(e) = self.host.take_error() {
            if self.fatal.is_none() {
                self.fatal = Some(crate::cli::plugins::hook_error(e));
            }
        }
    }

    /// `TestStarted` or (`finished`) `TestFinished` for test `index` on node `i`.
    pub(super) fn emit_test_event(&mut self, i: usize, index: usize, finished: bool) {
        let Some(collection) = self.collection.clone() else {
            return;
        };
        let (Some(nodeid), id) = (collection.ids.get(index), self.nodes[i].id.clone()) else {
            return;
        };
        self.emit(match finished {
            false => RunEvent::TestStarted {
                worker: &id,
                nodeid,
            },
            true => RunEvent::TestFinished {
                worker: &id,
                nodeid,
            },
        });
    }

    pub(super) fn emit(&mut self, ev: RunEvent<'_>) {
        for r in self.reporters.iter_mut() {
            r.event(&ev);
        }
    }

    /// Runs the whole session; returns the exit code and the failing node ids.
    pub fn run_outcome(mut self) -> Result<RunOutcome, CliError> {
        self.start_workers()?;
        let ticks = self.reporters.iter().any(|r| r.wants_ticks());
        let mut last_tick = Instant::now();
        loop {
            if ticks && last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.emit(RunEvent::Tick);
            }
            if self.exited_nodes == self.nodes.len() && self.nodes.iter().all(Node::is_down) {
                break;
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.check_clocks();
            if self.fatal.is_some() {
                self.kill_all();
                break;
            }
            if self.restart_for_controller {
                break;
            }
        }
        self.finish_run()
    }

    /// The plugins' `setupnodes`, then the first workers.
    fn start_workers(&mut self) -> Result<(), CliError> {
        let specs: Vec<String> = self.setup.specs.iter().map(|s| s.raw.clone()).collect();
        let r = self.host.setupnodes(&self.config_view, &specs);
        self.plugin_result(r);
        if let Some(err) = self.fatal.take() {
            return Err(err);
        }
        let mut i = 0;
        while i < self.setup.workers() {
            self.spawn_worker(i, true)?;
            if i == 0 {
                self.size_to_collection();
            }
            i += 1;
        }
        // Read them only once all are forked (see `WorkerHandle::start`).
        for n in &mut self.nodes {
            n.handle.start();
        }
        Ok(())
    }

    /// What time decides, after each message or 100 ms without one: the summary step,
    /// Ctrl-C, hangs, lost channels, and workers whose streams never ended.
    fn check_clocks(&mut self) {
        self.maybe_summarize();
        self.check_interrupts();
        self.check_hangs();
        self.check_lost_channels();
        if self.exited_nodes > 0 {
            for i in 0..self.nodes.len() {
                if self.nodes[i].exited.is_some() && !self.nodes[i].down_handled {
                    self.maybe_node_down(i);
                }
            }
        }
    }

    /// Fork mode: the collection is known before the second worker starts; never start more
    /// workers than the scheduler has units for (`-n 8 test_one.py::test_x` starts one).
    pub(super) fn size_to_collection(&mut self) {
        let Some(n) = self.zygote.workercount() else {
            return;
        };
        self.setup.specs.truncate(n);
        for node in &mut self.nodes {
            node.workerinput.insert("workercount".into(), json!(n));
        }
        // No node was added yet: the scheduler starts over with the smaller count.
        self.sched_config.num_nodes = n;
        self.sched = xdist_sched::make_scheduler(self.setup.opts.dist, self.sched_config.clone());
    }

    pub(super) fn node_index(&self, key: u32) -> usize {
        key as usize
    }

    pub(super) fn handle(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Events(key, events) => {
                for ev in events {
                    if let Some(ev) = self.shard_in(ev) {
                        self.on_event(key, ev);
                    }
                }
                self.check_plugin_scheduler();
                self.dispatch_actions();
                self.check_finished();
            }
            WorkerMsg::ChannelClosed(key) => {
                let i = self.node_index(key);
                self.nodes[i].channel_done = true;
                if self.nodes[i].exited.is_none() && !self.nodes[i].is_finished() {
                    self.nodes[i].channel_lost = Some(Instant::now());
                    self.lost_channels.push(i);
                }
                self.maybe_node_down(i);
            }
            WorkerMsg::ChannelFault(key, fault) => {
                let i = self.node_index(key);
                self.nodes[i].channel_done = true;
                self.nodes[i].fault = Some(format!("protocol error: {fault}"));
                // A worker that breaks the protocol is failed like a crash.
                self.nodes[i].handle.signal(libc::SIGKILL);
                self.maybe_node_down(i);
            }
            WorkerMsg::Output(key, stream, bytes) => {
                let i = self.node_index(key);
                let ends = bytes.ends_line();
                let line = String::from_utf8_lossy(&bytes);
                let line = match ends {
                    true => line.trim_end_matches(['\n', '\r']).to_string(),
                    false => line.into_owned(),
                };
                drop(bytes);
                if self.setup.opts.pytest.capture_no {
                    let id = self.nodes[i].id.clone();
                    self.emit(RunEvent::WorkerOutput {
                        worker: &id,
                        line: &line,
                        ends,
                    });
                }
                if stream == Stream::Stderr {
                    let tail = &mut self.nodes[i].stderr_tail;
                    tail.push_back(line);
                    if tail.len() > STDERR_TAIL {
                        tail.pop_front();
                    }
                }
            }
            WorkerMsg::OutputClosed(key, stream) => {
                let i = self.node_index(key);
                match stream {
                    Stream::Stderr => self.nodes[i].stderr_done = true,
                    Stream::Stdout => self.nodes[i].stdout_done = true,
                }
                self.maybe_node_down(i);
            }
            WorkerMsg::Exited(key, kind) => {
                let i = self.node_index(key);
                self.exited_nodes += usize::from(self.nodes[i].exited.is_none());
                self.nodes[i].exited = Some((kind, Instant::now()));
                self.maybe_node_down(i);
            }
        }
    }
}
