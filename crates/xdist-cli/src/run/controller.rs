//! The controller loop: the one place that owns the state of a run.
//!
//! It starts the workers, then reacts to [`WorkerMsg`]s one at a time: it feeds the
//! scheduler, sends the scheduler's [`Action`]s to workers, detects crashes and replaces
//! workers, counts failures for `-x`/`--maxfail`, and turns everything into [`RunEvent`]s
//! for the reporters. Nothing else mutates run state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use xdist_core::events::{CrashMoment, Reporter, RunEvent, RunSummary, TestCrash, WorkerCrash};
use xdist_core::exit::ExitCode;
use xdist_core::protocol::{
    Bootstrap, Command, Report, ReportOptions, WorkerEvent, PROTOCOL_VERSION,
};
use xdist_core::spec::XSpec;
use xdist_plugin_api::host::PluginHost;
use xdist_plugin_api::{ConfigView, GatewayView, NodeView, ReportView};
use xdist_sched::{Action, Collection, NodeKey, SchedConfig, Scheduling};
use xdist_worker::{ExitKind, Stream, WorkerHandle, WorkerMsg, WorkerSpawn};

use crate::cli::args::RunOptions;
use crate::error::CliError;
use crate::pystep::controller_session::ControllerSession;
use crate::run::durations;
use crate::run::state::{
    blame, crash_moment, Blame, Effect, EndFacts, HangClock, HangStep, Ledger, RestartBudget, Stop,
};

/// How long a worker's channel may stay open after its process exited (a forked grandchild
/// can hold it) before the worker counts as down anyway.
const CHANNEL_GRACE: Duration = Duration::from_secs(1);
/// How long a worker may live on after its event channel ended without `finished` (a test
/// closed or replaced it): then nothing it does can be reported, and it is killed.
const CHANNEL_LOST_WAIT: Duration = Duration::from_secs(2);
/// Lines of a worker's stderr kept for crash reports.
const STDERR_TAIL: usize = 200;
/// How often `RunEvent::Tick` is sent while a reporter wants ticks (a live status area).
const TICK: Duration = Duration::from_millis(150);
/// Largest `summarize` command sent to a worker (frames stop at 64 MiB).
const SUMMARIZE_MAX_BYTES: usize = 32 << 20;

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

struct Node {
    key: u32,
    id: String,
    /// Index into `RunSetup::specs`: where it runs (replacements reuse it).
    spec: usize,
    handle: WorkerHandle,
    ready: bool,
    collected: bool,
    /// In the scheduler (ready and collection accepted).
    scheduled: bool,
    finished: bool,
    shutdown_sent: bool,
    exited: Option<(ExitKind, Instant)>,
    channel_done: bool,
    stderr_tail: VecDeque<String>,
    /// The test this worker is running (set by its first report, cleared by `done`).
    running: Option<usize>,
    workerinput: Map<String, Value>,
    workerinfo: Map<String, Value>,
    stderr_done: bool,
    /// Its stdout ended too: `-s` output still in the pipe when it exits is not lost.
    stdout_done: bool,
    /// Its end was processed (once).
    down_handled: bool,
    /// The test running now and since when (from `logstart`).
    started: Option<(usize, Instant)>,
    hang: HangClock,
    /// Killed for breaking the protocol: what it sent.
    fault: Option<String>,
    /// Its tests are done and it waits to run the summary step (`linger`).
    lingering: bool,
    /// The exit status its `finished` event announced: the process must end with it.
    finished_status: Option<i32>,
    /// Its Python process and the thread that dumps stacks on SIGUSR1 (from `ready`).
    stack_thread: Option<(u32, i32)>,
    /// The last test whose outcome (a report with a category) it sent.
    outcome_of: Option<usize>,
    /// When its event channel ended while the process lived on.
    channel_lost: Option<Instant>,
    /// The traceback of an exception out of its `pytest_unconfigure`.
    unconfigure_error: Option<String>,
}

impl Node {
    fn streams_done(&self) -> bool {
        self.channel_done && self.stderr_done && self.stdout_done
    }

    fn is_down(&self) -> bool {
        match self.exited {
            Some((_, at)) => self.streams_done() || at.elapsed() >= CHANNEL_GRACE,
            None => false,
        }
    }
}

pub struct Controller<'r> {
    setup: RunSetup,
    host: &'r PluginHost,
    config_view: ConfigView,
    /// The scheduler came from a plugin's `make_scheduler`.
    plugin_scheduler: bool,
    tx: Sender<WorkerMsg>,
    rx: Receiver<WorkerMsg>,
    nodes: Vec<Node>,
    next_gw: usize,
    sched: Box<dyn Scheduling>,
    collection: Option<Arc<Collection>>,
    first_collector: Option<String>,
    reporters: Vec<&'r mut dyn Reporter>,
    options: ReportOptions,
    session_started: bool,
    collection_complete: bool,
    /// Collection reports shown so far, by `nodeid\0outcome`: how many times (one node id
    /// can report twice, e.g. a module and its doctests skipped by one `importorskip`), and
    /// how many each worker sent. Every worker collects the same, so a report is shown
    /// when a worker sends it more often than any worker before.
    seen_collect_reports: HashMap<String, usize>,
    worker_collect_reports: HashMap<(usize, String), usize>,
    seen_early_warnings: HashSet<(String, Option<String>)>,
    deselected: usize,
    ledger: Ledger,
    shutting_down: bool,
    stop: Stop,
    fatal: Option<CliError>,
    restarts: RestartBudget,
    started: Instant,
    actions: Vec<Action>,
    done_tests: HashSet<usize>,
    /// Tests reported failed because their worker died.
    crashed_tests: HashSet<usize>,
    sched_config: SchedConfig,
    failed_ids: Vec<String>,
    failed_seen: HashSet<String>,
    /// Whole-protocol duration of each test run here, for the duration history.
    run_durations: HashMap<usize, f64>,
    /// `--shard`: scheduler index -> worker collection index, and back (MAX: not ours).
    shard_map: Option<Vec<usize>>,
    shard_rev: Vec<usize>,
    /// Nodes whose process exited: until all have, no node needs a per-message look.
    exited_nodes: usize,
    /// Each node's `workeroutput` from its `finished` event (pytest-cov's data).
    worker_outputs: HashMap<usize, Map<String, Value>>,
    /// `summary_plugins` from the workers' `ready`, and every report serialized for them.
    summary_plugins: Vec<String>,
    /// `controller_plugins` from the workers' `ready`: the summary step replays the run.
    controller_plugins: Vec<String>,
    summary_reports: Vec<String>,
    summary_warnings: Vec<String>,
    /// The worker asked to `linger` for the summary step, whether `summarize` went out,
    /// and its answer (text, or the error that stopped the hooks).
    summary_node: Option<usize>,
    summary_sent: bool,
    summary_result: Option<Result<String, String>>,
    /// pytest-xdist's controller as a pytest process, when the run needs one.
    controller_session: Option<ControllerSession>,
    /// The exit status the controller session's `pytest_sessionfinish` hooks left.
    session_exit: Option<ExitCode>,
    /// A worker's `ready` said the run needs one and it has none: start over.
    restart_for_controller: bool,
    /// A worker's `ready` named reasons for a controller session.
    controller_reasons_seen: bool,
    /// Nodes whose event channel ended while their process lived on.
    lost_channels: Vec<usize>,
    /// The fork server, in fork mode (`--start fork`).
    zygote: crate::run::zygote::Zygote,
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
        let config = SchedConfig {
            num_nodes: setup.workers(),
            max_sched_chunk: setup.opts.maxschedchunk,
            loadscope_reorder: setup.opts.loadscope_reorder,
            durations: setup.durations.clone(),
        };
        let (sched, plugin_scheduler) = match host
            .make_scheduler(&config_view, &config)
            .map_err(crate::cli::plugins::hook_error)?
        {
            Some(s) => (s, true),
            None => (
                xdist_sched::make_scheduler(setup.opts.dist, config.clone()),
                false,
            ),
        };
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
            seen_collect_reports: HashMap::new(),
            worker_collect_reports: HashMap::new(),
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

    fn node_view(&self, i: usize) -> NodeView {
        let n = &self.nodes[i];
        NodeView {
            workerid: n.id.clone(),
            spec: self.setup.specs[n.spec].raw.clone(),
            workerinput: n.workerinput.clone(),
            workerinfo: n.workerinfo.clone(),
        }
    }

    /// Records a plugin hook failure (exit 3) unless an error is already pending.
    fn plugin_result<T>(&mut self, r: Result<T, xdist_plugin_api::host::PluginError>) -> Option<T> {
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

    fn check_plugin_scheduler(&mut self) {
        if let Some(e) = self.host.take_error() {
            if self.fatal.is_none() {
                self.fatal = Some(crate::cli::plugins::hook_error(e));
            }
        }
    }

    /// `TestStarted` (no duration) or `TestFinished` for test `index` on node `i`.
    fn emit_test_event(&mut self, i: usize, index: usize, duration: Option<f64>) {
        let Some(collection) = self.collection.clone() else {
            return;
        };
        let (Some(nodeid), id) = (collection.ids.get(index), self.nodes[i].id.clone()) else {
            return;
        };
        self.emit(match duration {
            None => RunEvent::TestStarted {
                worker: &id,
                nodeid,
            },
            Some(duration) => RunEvent::TestFinished {
                worker: &id,
                nodeid,
                duration,
            },
        });
    }

    fn emit(&mut self, ev: RunEvent<'_>) {
        for r in self.reporters.iter_mut() {
            r.event(&ev);
        }
    }

    /// Starts a worker for spec `spec_index`; `first` for the run's initial workers (a
    /// spec's `id=` names only the first, replacements get the next `gwN`).
    fn spawn_worker(&mut self, spec_index: usize, first: bool) -> Result<(), CliError> {
        let spec = self.setup.specs[spec_index].clone();
        let gw = match (&spec.id, first) {
            (Some(id), true) => id.clone(),
            _ => {
                self.next_gw += 1;
                format!("gw{}", self.next_gw - 1)
            }
        };
        let key = self.nodes.len() as u32;
        let mut workerinput = Map::new();
        workerinput.insert("workerid".into(), json!(gw));
        workerinput.insert("workercount".into(), json!(self.setup.workers()));
        workerinput.insert("testrunuid".into(), json!(self.setup.testrunuid));
        workerinput.insert("mainargv".into(), json!(self.setup.mainargv));
        crate::pystep::cov::add_workerinput(&mut workerinput, &self.setup.cwd);
        let (args, uid) = (&self.setup.opts.pytest_args, &self.setup.testrunuid);
        crate::pystep::randomly::add_workerinput(&mut workerinput, args, &self.setup.cwd, uid);
        let gateway = GatewayView {
            id: gw.clone(),
            spec: spec.raw.clone(),
        };
        let r = self.host.newgateway(&gateway);
        self.plugin_result(r);
        let mut view = NodeView {
            workerid: gw.clone(),
            spec: spec.raw.clone(),
            workerinput,
            workerinfo: Map::new(),
        };
        let ours = view.workerinput.clone();
        let r = self.host.configure_node(&mut view);
        self.plugin_result(r);
        let mut workerinput = view.workerinput;
        if let Some(session) = &mut self.controller_session {
            workerinput = session
                .configure_node(&gw, &spec.raw, &workerinput)
                .map_err(|e| CliError::Internal(format!("failed to configure {gw}: {e}")))?;
        }
        if workerinput != ours {
            // Plugins may read what they added in `pytest_configure`, which a fork server
            // would run once for all workers.
            self.zygote
                .no_fork("plugins add to each worker's workerinput (pytest_configure_node)");
        }
        let r = self.host.getremotemodule();
        let code = self.plugin_result(r).flatten();
        let bootstrap = Bootstrap {
            protocol: PROTOCOL_VERSION,
            workerinput: workerinput.clone(),
            args: match (&self.setup.remote_args, spec.needs_rsync()) {
                (Some(args), true) => args.clone(),
                _ => self.setup.opts.pytest_args.clone(),
            },
            // Only local workers share the controller's basetemp (pytest-xdist).
            basetemp: self
                .setup
                .run_basetemp
                .as_ref()
                .filter(|_| !spec.is_remote())
                .map(|b| b.join(format!("popen-{gw}")).display().to_string()),
            dist: self.setup.opts.dist.as_str().to_string(),
            color: self.setup.color,
            width: self.setup.width,
            want_header: true,
            want_files: self.setup.opts.pytest.want_files(),
            sys_path: Vec::new(),
            remote: spec.needs_rsync(),
            controller_session: self.controller_session.is_some(),
        };
        let session_env = (self.controller_session.iter())
            .flat_map(|s| s.env.iter())
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env: Vec<(OsString, OsString)> = session_env
            .chain([
                (
                    xdist_core::env::PYTEST_XDIST_WORKER.into(),
                    gw.clone().into(),
                ),
                (
                    xdist_core::env::PYTEST_XDIST_WORKER_COUNT.into(),
                    self.setup.workers().to_string().into(),
                ),
                (
                    xdist_core::env::PYTEST_XDIST_TESTRUNUID.into(),
                    self.setup.testrunuid.clone().into(),
                ),
            ])
            .collect();
        let handle = self.zygote.start_worker(
            WorkerSpawn {
                key,
                spec,
                python: self.setup.python.clone(),
                cwd: self.setup.cwd.clone(),
                env,
                bootstrap,
                code,
                token: self.setup.token.clone(),
            },
            &self.tx,
        )?;
        self.nodes.push(Node {
            key,
            id: gw,
            spec: spec_index,
            handle,
            ready: false,
            collected: false,
            scheduled: false,
            finished: false,
            shutdown_sent: false,
            exited: None,
            channel_done: false,
            stderr_tail: VecDeque::new(),
            running: None,
            workerinput,
            workerinfo: Map::new(),
            stderr_done: false,
            stdout_done: false,
            down_handled: false,
            started: None,
            hang: HangClock::default(),
            unconfigure_error: None,
            fault: None,
            lingering: false,
            finished_status: None,
            stack_thread: None,
            outcome_of: None,
            channel_lost: None,
        });
        if !first {
            if let Some(n) = self.nodes.last_mut() {
                n.handle.start();
            }
        }
        Ok(())
    }

    /// Runs the whole session; returns the exit code and the failing node ids.
    pub fn run_outcome(mut self) -> Result<RunOutcome, CliError> {
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
            if self.fatal.is_some() {
                self.kill_all();
                break;
            }
            if self.restart_for_controller {
                break;
            }
        }
        if self.restart_for_controller {
            return Ok(RunOutcome {
                exit: 0,
                failed: Vec::new(),
                collection_failed: false,
                needs_controller_session: true,
                controller_session_used: false,
            });
        }
        if let Some(err) = self.fatal.take() {
            return Err(err);
        }
        self.save_durations();
        let not_run = self.not_run();
        if not_run > 0 {
            let s = if not_run == 1 { " was" } else { "s were" };
            self.emit(RunEvent::XdistMessage {
                message: &format!("{not_run} test{s} not run"),
            });
        }
        self.finish_coverage();
        self.finish_plugin_summaries();
        let exit_for_hooks = self.exit_code();
        let r = self.host.sessionfinish(exit_for_hooks.code());
        if let Some(sections) = self.plugin_result(r) {
            for (plugin, text) in sections {
                self.emit(RunEvent::XdistMessage {
                    message: &format!("{plugin}: {}", text.trim_end()),
                });
            }
        }
        if let Some(err) = self.fatal.take() {
            return Err(err);
        }
        let exit = self.exit_code();
        let summary = RunSummary {
            exit,
            duration: self.started.elapsed(),
            collected: self.collection.as_ref().map_or(0, |c| c.len()),
            shouldfail: self.stop.shouldfail.clone(),
            interrupted: self.stop.interrupted.clone(),
            xdist_message: self.stop.xdist_message.clone(),
        };
        if self.session_started {
            self.emit(RunEvent::RunFinished(&summary));
        }
        self.report_unconfigure_errors();
        Ok(RunOutcome {
            exit: exit.code(),
            failed: std::mem::take(&mut self.failed_ids),
            collection_failed: self.ledger.collect_errors > 0,
            needs_controller_session: false,
            controller_session_used: self.controller_reasons_seen,
        })
    }

    /// Fork mode: the collection is known before the second worker starts; never start more
    /// workers than the scheduler has units for (`-n 8 test_one.py::test_x` starts one).
    fn size_to_collection(&mut self) {
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

    /// pytest-cov: combine the workers' coverage and report it, as its `DistMaster` would.
    fn finish_coverage(&mut self) {
        let nodes: Vec<crate::pystep::cov::CovNode> = (self.nodes.iter().enumerate())
            .map(|(i, n)| crate::pystep::cov::CovNode {
                id: &n.id,
                workerinfo: &n.workerinfo,
                workeroutput: self.worker_outputs.get(&i),
            })
            .collect();
        let failed = self.ledger.failures + self.ledger.crashes;
        let (python, cwd) = (&self.setup.python, &self.setup.cwd);
        let run_time = self.started.elapsed();
        let width = self.setup.width;
        let Some(cov) = crate::pystep::cov::finish(python, cwd, width, &nodes, failed, run_time)
        else {
            return;
        };
        self.emit(RunEvent::Coverage {
            error: cov.error.as_deref(),
            report: &cov.report,
            required: cov.required.as_ref().map(|(m, f)| (m.as_str(), *f)),
        });
        if cov.failed {
            self.ledger.failures += 1; // pytest-cov fails the session (`session.testsfailed += 1`)
        }
    }

    /// `workerinfo` of every worker by id, for the summary step's `report.node`.
    fn workerinfo_by_id(&self) -> Map<String, Value> {
        (self.nodes.iter())
            .filter(|n| !n.workerinfo.is_empty())
            .map(|n| (n.id.clone(), Value::Object(n.workerinfo.clone())))
            .collect()
    }

    /// The summary step needs every report (see `summary.rs`).
    fn wants_summary_reports(&self) -> bool {
        !self.summary_plugins.is_empty()
            || !self.controller_plugins.is_empty()
            || self.controller_session.is_some()
    }

    /// The summary step: controller-only plugins replay the run, then the user's
    /// `pytest_terminal_summary` hooks run over every report.
    fn finish_plugin_summaries(&mut self) {
        let session = self.controller_session.take();
        let mirror = !self.controller_plugins.is_empty() || session.is_some();
        let summary = !self.options.no_summary && (mirror || !self.summary_plugins.is_empty());
        if !self.session_started || !(mirror || summary) {
            return;
        }
        // `pytest_testnodedown` of the workers that finished.
        let nodes = (self.nodes.iter().enumerate())
            .filter_map(|(i, n)| {
                let output = self.worker_outputs.get(&i)?;
                Some(json!({
                    "id": n.id,
                    "spec": self.setup.specs[n.spec].raw,
                    "workeroutput": output,
                    "workerinfo": n.workerinfo,
                    "error": Value::Null,
                }))
            })
            .collect();
        let input = crate::pystep::summary::SummaryInput {
            args: &self.setup.opts.pytest_args,
            mirror,
            summary,
            numprocesses: self.setup.workers(),
            reports: &self.summary_reports,
            workerinfo: self.workerinfo_by_id(),
            warnings: &self.summary_warnings,
            exitstatus: self.exit_code().code(),
            collected: self.collection.as_ref().map_or(0, |c| c.len()),
            started: (SystemTime::now().checked_sub(self.started.elapsed()))
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            width: self.setup.width,
            color: self.setup.color,
            nodes,
        };
        let result = match (session, self.summary_result.take()) {
            (Some(session), _) => session.finish(&input).map(|(text, exitstatus)| {
                self.session_exit = exitstatus.and_then(ExitCode::from_code);
                text
            }),
            (None, Some(r)) => r,
            // No worker was left to run it (stopped, crashed, or too much to send).
            (None, None) => {
                crate::pystep::summary::run(&self.setup.python, &self.setup.cwd, &input)
            }
        };
        match result {
            Ok(text) => {
                if !text.is_empty() {
                    self.emit(RunEvent::PluginSummary { text: &text });
                }
            }
            Err(err) => {
                // pytest itself dies of it (a traceback, no summary line); we keep the
                // summary line and show the traceback where the hooks' text would be.
                self.stop.internal_error = true;
                let text: String = format!("failed to run plugins' end-of-run hooks:\n{err}")
                    .trim_end()
                    .lines()
                    .map(|l| format!("INTERNALERROR> {l}\n"))
                    .collect();
                self.emit(RunEvent::PluginSummary { text: &text });
            }
        }
    }

    /// `<cache_dir>/v/xdist/durations`, unless the cache is disabled (`-p no:cacheprovider`).
    fn history_path(&self) -> Option<PathBuf> {
        let dir = self
            .options
            .cache_dir
            .as_deref()
            .filter(|d| !d.is_empty())?;
        Some(PathBuf::from(dir).join("v").join("xdist").join("durations"))
    }

    fn save_durations(&mut self) {
        let (Some(path), Some(collection)) = (self.history_path(), self.collection.clone()) else {
            return;
        };
        if self.collection_complete && self.ledger.collect_errors == 0 {
            if let (Some(dir), Some(key)) =
                (self.options.cache_dir.as_deref(), &self.setup.args_key)
            {
                let _ = durations::record_collection_size(Path::new(dir), key, collection.len());
            }
        }
        if self.run_durations.is_empty() {
            return;
        }
        let measured = self
            .run_durations
            .iter()
            .filter_map(|(&i, &d)| collection.ids.get(i).map(|id| (id.as_str(), d)));
        // The history is a cache: failing to write it must not fail the run.
        let _ = durations::record(&path, measured);
    }

    /// Collected tests that never ended (neither finished nor crashed), unless the run was
    /// stopped on purpose (Ctrl-C, `-x`/`--maxfail`, collection errors).
    fn not_run(&self) -> usize {
        let Some(collection) = &self.collection else {
            return 0;
        };
        if !self.collection_complete || self.stop.stopped_on_purpose() {
            return 0;
        }
        let ended = self.done_tests.union(&self.crashed_tests).count();
        collection.len().saturating_sub(ended)
    }

    /// pytest exits 1 with the traceback when `pytest_unconfigure` raises; pytest-xdist's
    /// controller too, and it ignores what its workers raise there. With no Python controller
    /// here, an error every worker raised stands for the controller's: its traceback.
    fn every_unconfigure_failed(&self) -> Option<&str> {
        let mut finished = self.nodes.iter().filter(|n| n.finished).peekable();
        finished.peek()?;
        let mut first = None;
        for n in finished {
            first = first.or(Some(n.unconfigure_error.as_deref()?));
        }
        first
    }

    /// After the summary, as pytest: the traceback when every worker's `pytest_unconfigure`
    /// raised (it stands for the controller's), else each worker's whose did.
    fn report_unconfigure_errors(&mut self) {
        if let Some(text) = self.every_unconfigure_failed().map(str::to_string) {
            let traceback = &text;
            self.emit(RunEvent::UnconfigureError {
                worker: None,
                traceback,
            });
            return;
        }
        let errors: Vec<(String, String)> = (self.nodes.iter())
            .filter_map(|n| Some((n.id.clone(), n.unconfigure_error.clone()?)))
            .collect();
        for (id, traceback) in &errors {
            self.emit(RunEvent::UnconfigureError {
                worker: Some(id),
                traceback,
            });
        }
    }

    fn exit_code(&self) -> ExitCode {
        if let Some(exit) = self.session_exit {
            // The controller session's, after its `pytest_sessionfinish` hooks.
            return exit;
        }
        let end = EndFacts {
            unconfigure_failed: self.every_unconfigure_failed().is_some(),
            not_run: self.not_run(),
            nothing_collected: self.collection.as_ref().is_none_or(|c| c.is_empty())
                && !self.empty_shard(),
        };
        self.stop.reason(&self.ledger, end).exit()
    }

    /// Carries out what the run state decided.
    fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::StopAll => self.stop_all(),
                Effect::KillAll => self.kill_all(),
            }
        }
    }

    fn check_interrupts(&mut self) {
        let effects = self
            .stop
            .on_signals(crate::run::signals::count(), Instant::now());
        self.perform(effects);
    }

    /// `--hang-timeout`: ask a hung worker for its stacks, then kill it; reported as a crash.
    fn check_hangs(&mut self) {
        let Some(timeout) = self.setup.hang_timeout else {
            return;
        };
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            if n.exited.is_some() {
                continue;
            }
            match n.hang.step(n.started, timeout, Instant::now()) {
                HangStep::DumpStacks => {
                    // Only the thread waiting on the channel is signalled: a signal the
                    // test's thread took would cut its sleep or C call short.
                    let signalled = match n.stack_thread {
                        Some((pid, tid)) if !self.setup.specs[n.spec].is_remote() => {
                            n.handle.signal_thread(pid, tid, libc::SIGUSR1)
                        }
                        _ => false,
                    };
                    if !signalled {
                        // A remote process (or an unknown thread): ask over the channel.
                        n.handle.send(&[Command::DumpStacks]);
                    }
                }
                HangStep::Kill => n.handle.signal(libc::SIGKILL),
                HangStep::Nothing => {}
            }
        }
    }

    /// A worker whose event channel ended but whose process did not: killed after
    /// [`CHANNEL_LOST_WAIT`], a crash of the test it was running.
    fn check_lost_channels(&mut self) {
        let lost = std::mem::take(&mut self.lost_channels);
        for i in lost {
            let n = &mut self.nodes[i];
            match n.channel_lost {
                Some(at) if n.exited.is_none() && at.elapsed() >= CHANNEL_LOST_WAIT => {
                    n.fault = Some("channel lost: the worker's event channel was closed or replaced while it ran".into());
                    n.handle.signal(libc::SIGKILL);
                }
                Some(_) if n.exited.is_none() => self.lost_channels.push(i),
                _ => {}
            }
        }
    }

    fn kill_all(&mut self) {
        for n in &mut self.nodes {
            if n.exited.is_none() {
                n.handle.signal(libc::SIGKILL);
            }
        }
    }

    fn node_index(&self, key: u32) -> usize {
        key as usize
    }

    fn handle(&mut self, msg: WorkerMsg) {
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
                if self.nodes[i].exited.is_none() && !self.nodes[i].finished {
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

    fn on_event(&mut self, key: u32, ev: WorkerEvent) {
        let i = self.node_index(key);
        match ev {
            WorkerEvent::Ready {
                protocol,
                header,
                options,
                info,
                summary_plugins,
                controller_plugins,
                controller_reasons,
                stack_thread,
            } => {
                self.nodes[i].stack_thread = stack_thread.map(|tid| (info.pid, tid));
                self.controller_reasons_seen |= !controller_reasons.is_empty();
                if !controller_reasons.is_empty() && self.controller_session.is_none() {
                    // Its workerinput came too late for this run's workers: start over.
                    self.restart_for_controller = true;
                    self.kill_all();
                    return;
                }
                if self.summary_plugins.is_empty() {
                    self.summary_plugins = summary_plugins;
                }
                if self.controller_plugins.is_empty() {
                    self.controller_plugins = controller_plugins;
                }
                if let Ok(Value::Object(mut m)) = serde_json::to_value(&info) {
                    m.insert("id".into(), json!(self.nodes[i].id));
                    m.insert(
                        "spec".into(),
                        json!(self.setup.specs[self.nodes[i].spec].raw),
                    );
                    self.nodes[i].workerinfo = m;
                }
                let view = self.node_view(i);
                let r = self.host.testnodeready(&view);
                self.plugin_result(r);
                if protocol != PROTOCOL_VERSION {
                    self.fatal = Some(CliError::Internal(format!(
                        "worker {} speaks protocol {protocol}, this xdist speaks {PROTOCOL_VERSION}",
                        self.nodes[i].id
                    )));
                    return;
                }
                self.nodes[i].ready = true;
                if !self.session_started {
                    self.session_started = true;
                    let mut header = header;
                    if let Some(reason) = &self.zygote.fallback {
                        header.push(format!("xdist: spawning workers: {reason}"));
                    }
                    self.options = options;
                    let options = self.options.clone();
                    self.emit(RunEvent::SessionStart {
                        header: &header,
                        options: &options,
                    });
                    let count = self.setup.workers();
                    self.emit(RunEvent::WorkersCreated { count });
                }
                if self.shutting_down {
                    self.send(i, Command::Shutdown);
                }
            }
            WorkerEvent::Fatal { kind, message, .. } => {
                if kind == "controller_session" && self.controller_session.is_none() {
                    // A plugin needs what a controller's `pytest_configure_node` gives.
                    self.restart_for_controller = true;
                    self.kill_all();
                    return;
                }
                if self.fatal.is_none() {
                    self.fatal = Some(self.fatal_error(&kind, &message));
                }
            }
            WorkerEvent::Collectreport { r } => {
                let nodeid = r.nodeid.clone().unwrap_or_default();
                let key = format!("{}\0{}", nodeid, r.outcome);
                let sent = self
                    .worker_collect_reports
                    .entry((i, key.clone()))
                    .or_insert(0);
                *sent += 1;
                let shown = self.seen_collect_reports.entry(key).or_insert(0);
                if *sent > *shown {
                    *shown = *sent;
                    if r.outcome == "failed" {
                        self.ledger.collect_errors += 1;
                        self.note_failed(&nodeid);
                    }
                    if let (true, Some(ser)) = (self.wants_summary_reports(), &r.ser) {
                        let report = summary_report(&self.nodes[i].id, ser);
                        self.summary_reports.push(report);
                    }
                    let id = self.nodes[i].id.clone();
                    self.emit(RunEvent::CollectReport {
                        worker: &id,
                        nodeid: &nodeid,
                        report: &r,
                    });
                }
            }
            WorkerEvent::Collectionfinish {
                ids,
                groups,
                deselected,
                lines,
                ..
            } => self.on_collection(i, ids, groups, deselected, lines),
            WorkerEvent::Logstart { i: index, loc } => {
                self.nodes[i].started = Some((index, Instant::now()));
                self.emit_test_event(i, index, None);
                if let Some(loc) = loc {
                    let id = self.nodes[i].id.clone();
                    self.emit(RunEvent::TestStart {
                        worker: &id,
                        loc: &loc,
                    });
                }
            }
            WorkerEvent::Report(r) => self.on_report(i, r),
            WorkerEvent::Done { i: index, d } => {
                self.nodes[i].running = None;
                self.nodes[i].started = None;
                self.done_tests.insert(index);
                self.run_durations.insert(index, d);
                self.emit_test_event(i, index, Some(d));
                if self.nodes[i].scheduled {
                    self.sched
                        .mark_test_complete(NodeKey(key), index, d, &mut self.actions);
                }
            }
            WorkerEvent::Warning(w) => {
                if w.when != "runtest"
                    && !self
                        .seen_early_warnings
                        .insert((w.message.clone(), w.location.clone()))
                {
                    return;
                }
                if let (true, Some(sw)) = (self.wants_summary_reports(), &w.summary) {
                    self.summary_warnings.push(sw.clone());
                }
                self.emit(RunEvent::Warning(&w));
            }
            WorkerEvent::Unscheduled { indices } => {
                if self.nodes[i].scheduled {
                    let _ = self.sched.remove_pending_tests_from_node(
                        NodeKey(key),
                        &indices,
                        &mut self.actions,
                    );
                }
            }
            WorkerEvent::InternalError { text } => {
                self.stop.internal_error = true;
                self.emit(RunEvent::InternalError { text: &text });
            }
            WorkerEvent::UnconfigureError { text } => self.nodes[i].unconfigure_error = Some(text),
            WorkerEvent::Lingering => self.nodes[i].lingering = true,
            WorkerEvent::Log { text } => {
                let id = self.nodes[i].id.clone();
                for line in text.lines() {
                    self.emit(RunEvent::WorkerOutput {
                        worker: &id,
                        line,
                        ends: true,
                    });
                }
            }
            WorkerEvent::Summary { text, error } => {
                self.summary_result = Some(match error {
                    Some(e) => Err(e),
                    None => Ok(text),
                });
            }
            WorkerEvent::Finished {
                exitstatus,
                shouldfail,
                shouldstop,
                workeroutput,
            } => {
                self.nodes[i].finished = true;
                self.nodes[i].finished_status = Some(exitstatus);
                self.worker_outputs.insert(i, workeroutput);
                let view = self.node_view(i);
                let r = self.host.testnodedown(&view, None);
                self.plugin_result(r);
                if exitstatus == ExitCode::Interrupted.code() && self.stop.interrupted.is_none() {
                    self.stop.interrupted = Some(format!(
                        "<WorkerController {}> received keyboard-interrupt",
                        self.nodes[i].id
                    ));
                    self.stop_all();
                }
                for v in [shouldfail, shouldstop] {
                    if let Value::String(s) = v {
                        if self.stop.shouldfail.is_none() && !s.is_empty() {
                            self.stop.shouldfail = Some(s);
                        }
                    }
                }
                if exitstatus == ExitCode::InternalError.code() {
                    self.stop.internal_error = true;
                }
            }
        }
    }

    fn fatal_error(&self, kind: &str, message: &str) -> CliError {
        let py = self.setup.python.display();
        match kind {
            "no_pytest" => CliError::Usage(format!(
                "failed to import pytest with {py} ({message}); install it with `{py} -m pip install pytest` or pass --python PATH of an interpreter that has pytest"
            )),
            "old_pytest" => CliError::Usage(format!(
                "{message} (xdist needs pytest >= 7); upgrade it with `{py} -m pip install -U pytest`"
            )),
            "usage" => CliError::Usage(message.trim().trim_start_matches("ERROR: ").to_string()),
            _ => CliError::Internal(format!(
                "worker failed to start: {}",
                message.trim_end()
            )),
        }
    }

    fn on_collection(
        &mut self,
        i: usize,
        ids: Vec<String>,
        groups: Vec<Option<String>>,
        deselected: usize,
        lines: Vec<String>,
    ) {
        if self.shutting_down {
            return;
        }
        let view = self.node_view(i);
        let r = self.host.node_collection_finished(&view, &ids);
        self.plugin_result(r);
        let (ids, groups, not_in_shard) = self.shard_collection(ids, groups);
        if let (Some(s), true) = (
            self.setup.opts.shard,
            self.collection.is_none() && ids.is_empty() && not_in_shard > 0,
        ) {
            let (index, total) = (s.index, s.total);
            let collected = not_in_shard;
            self.emit(RunEvent::EmptyShard {
                index,
                total,
                collected,
            });
        }
        let deselected = deselected + not_in_shard;
        self.nodes[i].collected = true;
        let node_id = self.nodes[i].id.clone();
        let accept = match &self.collection {
            None => {
                let collection = Arc::new(Collection { ids, groups });
                if !self.setup.opts.no_durations && !self.plugin_scheduler {
                    if let Some(d) = self
                        .history_path()
                        .and_then(|p| durations::estimates(&p, &collection.ids))
                    {
                        // No node was added yet: start over with a duration-aware scheduler.
                        self.sched_config.durations = Some(Arc::new(d));
                        self.sched = xdist_sched::make_scheduler(
                            self.setup.opts.dist,
                            self.sched_config.clone(),
                        );
                    }
                }
                self.collection = Some(collection);
                self.first_collector = Some(node_id.clone());
                self.deselected = deselected;
                true
            }
            Some(first) if first.ids == ids => true,
            Some(first) => {
                if self.collection_complete {
                    // A replacement that collected differently is never used.
                    self.send(i, Command::Shutdown);
                    return;
                }
                let diff = xdist_sched::collection_diff(
                    self.first_collector.as_deref().unwrap_or("gw0"),
                    &first.ids,
                    &node_id,
                    &ids,
                );
                self.ledger.collect_errors += 1;
                let body = format!("{}\n", diff.trim_end());
                let report = Report {
                    when: "collect".into(),
                    outcome: "failed".into(),
                    category: "error".into(),
                    letter: "E".into(),
                    word: "ERROR".into(),
                    head: Some(node_id.clone()),
                    body: Some(body),
                    short: Some(format!("ERROR {node_id}")),
                    counts: true,
                    ..Report::default()
                };
                self.emit(RunEvent::CollectReport {
                    worker: &node_id,
                    nodeid: &node_id,
                    report: &report,
                });
                self.stop_all();
                return;
            }
        };
        if !accept {
            return;
        }
        let Some(collection) = self.collection.clone() else {
            return;
        };
        let spec = self.setup.specs[self.nodes[i].spec].raw.clone();
        self.sched.add_node(NodeKey(self.nodes[i].key), &spec);
        self.sched
            .add_node_collection(NodeKey(self.nodes[i].key), collection.clone());
        self.nodes[i].scheduled = true;
        if self.collection_complete {
            self.sched.schedule(&mut self.actions);
            return;
        }
        if !self.sched.collection_is_completed() {
            return;
        }
        self.collection_complete = true;
        let name = self.sched.name();
        self.emit(RunEvent::CollectionComplete {
            workers: self.setup.workers(),
            items: collection.len(),
            deselected: self.deselected,
            lines: &lines,
            scheduler: name,
            ids: &collection.ids,
        });
        if self.ledger.collect_errors > 0 && !self.options.continue_on_collection_errors {
            let n = self.ledger.collect_errors;
            self.stop.interrupted = Some(format!(
                "Interrupted: {n} error{} during collection",
                if n == 1 { "" } else { "s" }
            ));
            self.stop_all();
            return;
        }
        self.sched.schedule(&mut self.actions);
    }

    fn on_report(&mut self, i: usize, r: Report) {
        let Some(collection) = self.collection.clone() else {
            return;
        };
        let nodeid = match (&r.nodeid, r.index) {
            (Some(n), _) => n.clone(),
            (None, Some(idx)) => collection.ids.get(idx).cloned().unwrap_or_default(),
            (None, None) => String::new(),
        };
        if let Some(idx) = r.index {
            self.nodes[i].running = Some(idx);
            if !r.category.is_empty() {
                self.nodes[i].outcome_of = Some(idx);
            }
        }
        if r.outcome == "failed" && r.xfail.is_none() {
            self.ledger.failures += 1;
            self.note_failed(&nodeid);
        }
        if self.wants_summary_reports() {
            if let Some(ser) = &r.ser {
                let report = summary_report(&self.nodes[i].id, ser);
                self.summary_reports.push(report);
            }
        }
        let id = self.nodes[i].id.clone();
        self.emit(RunEvent::TestReport {
            worker: &id,
            nodeid: &nodeid,
            report: &r,
        });
        let effects = self.stop.on_failure(&self.ledger, self.options.maxfail);
        self.perform(effects);
    }

    fn note_failed(&mut self, nodeid: &str) {
        if self.failed_seen.insert(nodeid.to_string()) {
            self.failed_ids.push(nodeid.to_string());
        }
    }

    /// Drops all queued work and ends every worker's session after its running test.
    fn stop_all(&mut self) {
        self.shutting_down = true;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].finished && self.nodes[i].exited.is_none() {
                self.nodes[i].shutdown_sent = true;
                self.nodes[i].handle.send(&[Command::Stop]);
                if self.nodes[i].scheduled {
                    self.sched.mark_node_shutdown(NodeKey(self.nodes[i].key));
                }
            }
        }
        self.actions.clear();
    }

    fn send(&mut self, i: usize, cmd: Command) {
        let cmd = if matches!(cmd, Command::Shutdown | Command::Stop) {
            if self.nodes[i].shutdown_sent {
                return;
            }
            self.nodes[i].shutdown_sent = true;
            if self.nodes[i].scheduled {
                self.sched.mark_node_shutdown(NodeKey(self.nodes[i].key));
            }
            if matches!(cmd, Command::Shutdown) {
                self.shutdown_command(i)
            } else {
                cmd
            }
        } else {
            cmd
        };
        self.nodes[i].handle.send(&[cmd]);
    }

    /// `shutdown`, or `linger` for the first worker to end while the summary step is
    /// wanted: that one runs it once every other worker is gone (see `maybe_summarize`).
    fn shutdown_command(&mut self, i: usize) -> Command {
        // Controller-only plugins need the summary step's own process anyway, and a
        // controller session runs the hooks itself.
        let wanted = !self.summary_plugins.is_empty()
            && !self.options.no_summary
            && self.controller_plugins.is_empty()
            && self.controller_session.is_none();
        if wanted && self.summary_node.is_none() && self.nodes[i].ready {
            self.summary_node = Some(i);
            Command::Linger
        } else {
            Command::Shutdown
        }
    }

    /// Sends `summarize` to the lingering worker once it is the last one left.
    fn maybe_summarize(&mut self) {
        let Some(s) = self.summary_node else {
            return;
        };
        if self.summary_sent || !self.nodes[s].lingering || self.nodes[s].exited.is_some() {
            return;
        }
        let others_done = (self.nodes.iter().enumerate())
            .all(|(j, n)| j == s || (n.exited.is_some() && n.channel_done));
        if !others_done {
            return;
        }
        self.summary_sent = true;
        let size: usize = (self.summary_reports.iter().chain(&self.summary_warnings))
            .map(|r| r.len() + 4)
            .sum();
        if size > SUMMARIZE_MAX_BYTES {
            // Too big for one frame: the summary step runs in a process of its own.
            self.nodes[s].handle.send(&[Command::Shutdown]);
            return;
        }
        let summarize = Command::Summarize {
            reports: std::mem::take(&mut self.summary_reports),
            workerinfo: self.workerinfo_by_id(),
            warnings: std::mem::take(&mut self.summary_warnings),
            exitstatus: self.exit_code().code(),
        };
        self.nodes[s].handle.send(&[summarize, Command::Shutdown]);
    }

    fn dispatch_actions(&mut self) {
        if self.actions.is_empty() {
            return;
        }
        let actions = std::mem::take(&mut self.actions);
        // One frame per node per round.
        let mut per_node: HashMap<u32, Vec<Command>> = HashMap::new();
        for a in actions {
            match a {
                Action::Run { node, indices } => {
                    if !self.shutting_down {
                        per_node
                            .entry(node.0)
                            .or_default()
                            .push(Command::Run { indices })
                    }
                }
                Action::Steal { node, indices } => per_node
                    .entry(node.0)
                    .or_default()
                    .push(Command::Steal { indices }),
                Action::Shutdown { node } => {
                    let i = self.node_index(node.0);
                    if !self.nodes[i].shutdown_sent {
                        self.nodes[i].shutdown_sent = true;
                        let cmd = self.shutdown_command(i);
                        per_node.entry(node.0).or_default().push(cmd);
                    }
                }
            }
        }
        for (key, mut cmds) in per_node {
            let i = self.node_index(key);
            self.shard_out(&mut cmds);
            self.nodes[i].handle.send(&cmds);
        }
    }

    /// `--shard`: keeps this shard's tests of a worker's collection (the scheduler sees only
    /// them, indexed 0..m); the first call fixes the index maps.
    fn shard_collection(
        &mut self,
        ids: Vec<String>,
        groups: Vec<Option<String>>,
    ) -> (Vec<String>, Vec<Option<String>>, usize) {
        let Some(shard) = self.setup.opts.shard else {
            return (ids, groups, 0);
        };
        let durations = match shard.by {
            crate::cli::args::ShardBy::Duration => self
                .history_path()
                .and_then(|p| durations::estimates(&p, &ids)),
            crate::cli::args::ShardBy::Hash => None,
        };
        let selected = crate::run::shard::select(&ids, shard, durations.as_deref());
        if self.shard_map.is_none() {
            let mut rev = vec![usize::MAX; ids.len()];
            for (s, &w) in selected.iter().enumerate() {
                rev[w] = s;
            }
            self.shard_rev = rev;
            self.shard_map = Some(selected.clone());
        }
        let out_ids = selected.iter().map(|&w| ids[w].clone()).collect();
        let out_groups = if groups.len() == ids.len() {
            selected.iter().map(|&w| groups[w].clone()).collect()
        } else {
            groups
        };
        (out_ids, out_groups, ids.len() - selected.len())
    }

    /// `--shard`: the suite has tests but none in this shard (a CI job that passes).
    fn empty_shard(&self) -> bool {
        self.shard_map.as_ref().is_some_and(|m| m.is_empty()) && !self.shard_rev.is_empty()
    }

    /// `--shard`: scheduler indices -> the worker's collection indices.
    fn shard_out(&self, cmds: &mut [Command]) {
        let Some(map) = &self.shard_map else {
            return;
        };
        for c in cmds {
            if let Command::Run { indices } | Command::Steal { indices } = c {
                for x in indices.iter_mut() {
                    *x = map.get(*x).copied().unwrap_or(*x);
                }
            }
        }
    }

    /// `--shard`: the worker's collection indices -> scheduler indices (None: not ours).
    fn shard_in(&self, ev: WorkerEvent) -> Option<WorkerEvent> {
        if self.shard_map.is_none() {
            return Some(ev);
        }
        let m = |w: usize| self.shard_rev.get(w).copied().filter(|&s| s != usize::MAX);
        Some(match ev {
            WorkerEvent::Logstart { i, loc } => WorkerEvent::Logstart { i: m(i)?, loc },
            WorkerEvent::Done { i, d } => WorkerEvent::Done { i: m(i)?, d },
            WorkerEvent::Report(mut r) => {
                r.index = r.index.and_then(m);
                WorkerEvent::Report(r)
            }
            WorkerEvent::Unscheduled { indices } => WorkerEvent::Unscheduled {
                indices: indices.into_iter().filter_map(m).collect(),
            },
            other => other,
        })
    }

    fn check_finished(&mut self) {
        if self.collection_complete && !self.shutting_down && self.sched.tests_finished() {
            self.shutting_down = true;
            for i in 0..self.nodes.len() {
                if self.nodes[i].exited.is_none() {
                    self.send(i, Command::Shutdown);
                }
            }
        }
    }

    fn maybe_node_down(&mut self, i: usize) {
        let Some((kind, at)) = self.nodes[i].exited else {
            return;
        };
        if !self.nodes[i].streams_done() && at.elapsed() < CHANNEL_GRACE {
            return;
        }
        if self.nodes[i].down_handled {
            return;
        }
        self.nodes[i].down_handled = true;
        if self.nodes[i].finished {
            if self.ended_abnormally(i, kind) {
                // Its reports are all in; the crash belongs to the end of its session.
                self.report_session_crash(i, CrashMoment::AfterSession, kind);
            }
            if self.nodes[i].scheduled {
                let key = NodeKey(self.nodes[i].key);
                self.nodes[i].scheduled = false;
                let _ = self.sched.remove_node(key, &mut self.actions);
                self.dispatch_actions();
            }
            return;
        }
        let others_alive = self
            .nodes
            .iter()
            .enumerate()
            .any(|(j, n)| j != i && n.exited.is_none());
        if self.fatal.is_some() || (!self.nodes[i].ready && !self.session_started && !others_alive)
        {
            // Died before its session started, and no other worker can run anything:
            // say why once. (With other workers alive it is a crash: replaced, counted.)
            if self.fatal.is_none() {
                let tail: Vec<String> = self.nodes[i].stderr_tail.iter().cloned().collect();
                self.fatal = Some(CliError::Internal(format!(
                    "worker {} exited before its pytest session started ({kind}){}",
                    self.nodes[i].id,
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", tail.join("\n"))
                    }
                )));
            }
            return;
        }
        self.on_crash(i, kind);
    }

    fn on_crash(&mut self, i: usize, kind: ExitKind) {
        let id = self.nodes[i].id.clone();
        if self.stop.interrupting() {
            // Killed on the user's request: nothing crashed, nothing is replaced.
            if self.nodes[i].scheduled {
                self.nodes[i].scheduled = false;
                let key = NodeKey(self.nodes[i].key);
                let _ = self.sched.remove_node(key, &mut self.actions);
                self.actions.clear();
            }
            return;
        }
        let error = "Not properly terminated".to_string();
        self.emit(RunEvent::NodeDown {
            worker: &id,
            error: &error,
        });
        let view = self.node_view(i);
        let r = self.host.testnodedown(&view, Some(&error));
        self.plugin_result(r);
        // The worker flushes its events when a test starts: `started` is the test that was
        // running when it died, or None if it died between tests.
        let started = self.nodes[i].started.map(|(idx, _)| idx);
        let mut gave_back = false;
        let crash_index = if self.nodes[i].scheduled {
            self.nodes[i].scheduled = false;
            let key = NodeKey(self.nodes[i].key);
            let first = self.sched.remove_node(key, &mut self.actions);
            match (first, started) {
                // Its first pending test never started: it goes back to the queue.
                (Some(f), None) if self.sched.mark_test_pending(f, &mut self.actions).is_ok() => {
                    gave_back = true;
                    None
                }
                _ => first,
            }
        } else {
            started.or(self.nodes[i].running)
        };
        let collection = self.collection.clone();
        let node = &self.nodes[i];
        let verdict = match collection {
            Some(_) => blame(crash_index, node.outcome_of, |t| {
                self.done_tests.contains(&t)
            }),
            None => Blame::Nobody,
        };
        if let Some(idx) = crash_index.filter(|_| collection.is_some()) {
            if self.nodes[i].hang.hung != Some(idx) {
                self.nodes[i].hang.hung = None;
            }
        }
        let nodeid = |idx: usize| collection.as_ref()?.ids.get(idx).cloned();
        match verdict {
            Blame::Teardown(idx) => {
                // It died after the test's outcome was shown (in its teardown): one
                // outcome per test, so the crash is reported on its own.
                self.crashed_tests.insert(idx);
                let nodeid = nodeid(idx).unwrap_or_default();
                let moment = CrashMoment::Teardown { nodeid: &nodeid };
                self.report_session_crash(i, moment, kind);
            }
            Blame::Test(idx) => {
                self.crashed_tests.insert(idx);
                self.report_crash(i, &nodeid(idx).unwrap_or_default(), kind);
            }
            Blame::Nobody => {}
        }
        let blamed = verdict != Blame::Nobody;
        // All its tests ran and it was told to end: it died in the session's end
        // (`pytest_sessionfinish`, session fixtures' last teardown), not in a test.
        let session_end = !blamed && !gave_back && self.nodes[i].shutdown_sent;
        if !blamed {
            // No test to report it on: say it here (and in the summary).
            let moment = crash_moment(session_end, self.nodes[i].ready);
            self.report_session_crash(i, moment, kind);
        }
        // One that had nothing left to run needs no replacement: it does not count for
        // --max-worker-restart.
        if let Some(msg) = self.restarts.on_crash(&id, !session_end) {
            self.emit(RunEvent::XdistMessage { message: &msg });
            self.stop.xdist_message = Some(msg);
            self.stop_all();
        } else if !session_end && (!self.shutting_down || self.sched.has_pending()) {
            self.emit(RunEvent::ReplacingWorker { worker: &id });
            self.shutting_down = false;
            if let Err(e) = self.spawn_worker(self.nodes[i].spec, false) {
                self.fatal = Some(e);
            }
        }
        self.dispatch_actions();
        self.check_finished();
    }

    /// Whether a worker that sent `finished` died (a signal, or an exit status other than
    /// the one it announced) rather than ending as its session said; a kill of ours on the
    /// user's request or a fatal error does not count.
    fn ended_abnormally(&self, i: usize, kind: ExitKind) -> bool {
        if self.stop.interrupting() || self.fatal.is_some() {
            return false;
        }
        match kind {
            ExitKind::Signal(_) => true,
            // The worker's own INTERNALERROR path exits 3 and was reported as such.
            ExitKind::Code(c) => {
                Some(c) != self.nodes[i].finished_status
                    && !(c == ExitCode::InternalError.code() && self.stop.internal_error)
            }
            ExitKind::Disconnected => false,
        }
    }

    /// What is known of worker `i`'s death, for its report.
    fn crash_facts(&self, i: usize, kind: ExitKind) -> CrashFacts {
        let n = &self.nodes[i];
        CrashFacts {
            worker: n.id.clone(),
            exit: kind.to_string(),
            fault: n.fault.clone(),
            hang_timeout: (n.hang.hung.and(self.setup.hang_timeout)).map(|t| t.as_secs_f64()),
            stderr_tail: n.stderr_tail.iter().cloned().collect(),
        }
    }

    /// A crash no test is to blame for: reported on its own, and the run fails.
    fn report_session_crash(&mut self, i: usize, moment: CrashMoment<'_>, kind: ExitKind) {
        let facts = self.crash_facts(i, kind);
        let crash = &facts.view();
        self.emit(RunEvent::WorkerCrashed { crash, moment });
        self.ledger.crashes += 1;
    }

    /// The test worker `i` died running fails with the crash, unless a plugin's
    /// `handlecrashitem` runs it again.
    fn report_crash(&mut self, i: usize, nodeid: &str, kind: ExitKind) {
        let id = self.nodes[i].id.clone();
        let mut view = ReportView {
            nodeid: nodeid.to_string(),
            outcome: "failed".into(),
            longrepr: crate::report::crash::headline(&id, nodeid),
            when: "???".into(),
            duration: 0.0,
            worker: id,
        };
        if let Some(collection) = self.collection.clone() {
            let r = self.host.handlecrashitem(
                nodeid,
                &mut view,
                self.sched.as_mut(),
                &collection.ids,
                &mut self.actions,
            );
            self.plugin_result(r);
        }
        if view.outcome != "rerun" {
            self.ledger.crashes += 1;
            self.note_failed(nodeid);
        }
        let (facts, infoline) = (self.crash_facts(i, kind), self.infoline(i));
        self.emit(RunEvent::TestCrashed(&TestCrash {
            crash: facts.view(),
            nodeid,
            longrepr: &view.longrepr,
            outcome: &view.outcome,
            infoline: infoline.as_deref(),
        }));
    }

    /// pytest-xdist's `[gw0] linux -- Python 3.11.7 /usr/bin/python3` line.
    fn infoline(&self, i: usize) -> Option<String> {
        let info = &self.nodes[i].workerinfo;
        let platform = info.get("sysplatform")?.as_str()?;
        let exe = info.get("executable")?.as_str()?;
        let ver: Vec<String> = info
            .get("version_info")?
            .as_array()?
            .iter()
            .take(3)
            .map(|v| v.to_string())
            .collect();
        Some(format!(
            "[{}] {platform} -- Python {} {exe}",
            self.nodes[i].id,
            ver.join(".")
        ))
    }
}

/// [`WorkerCrash`]'s facts, owned while the event borrows them.
struct CrashFacts {
    worker: String,
    exit: String,
    fault: Option<String>,
    hang_timeout: Option<f64>,
    stderr_tail: Vec<String>,
}

impl CrashFacts {
    fn view(&self) -> WorkerCrash<'_> {
        WorkerCrash {
            worker: &self.worker,
            exit: &self.exit,
            fault: self.fault.as_deref(),
            hang_timeout: self.hang_timeout,
            stderr_tail: &self.stderr_tail,
        }
    }
}

/// One report for the summary step: `{"w": worker id, "r": the serialized report}`.
fn summary_report(worker: &str, ser: &str) -> String {
    format!("{{\"w\":{},\"r\":{ser}}}", json!(worker))
}
