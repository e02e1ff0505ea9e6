//! The controller loop: it starts the workers, hands each [`WorkerMsg`] (and the clock) to
//! [`RunState::on`], and carries out the [`Effect`]s it returns: frames and signals to the
//! workers' processes, replacement workers, events for the reporters. What to do is decided
//! there; the loop owns what does I/O (process handles, channels, reporters, the controller
//! session's Python process, the fork server).

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::events::{Reporter, RunEvent};
use xdist_core::protocol::Command;
use xdist_core::spec::XSpec;
use xdist_plugin_api::host::PluginHost;
use xdist_plugin_api::ConfigView;
use xdist_worker::{WorkerHandle, WorkerMsg};

use crate::cli::args::RunOptions;
use crate::error::CliError;
use crate::pystep::controller_session::ControllerSession;
use crate::run::hooks::Hooks;
use crate::run::run_state::{Input, RunState};
use crate::run::state::Effect;

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
    pub(super) state: RunState<'r>,
    /// Each worker's process and channel, by node index.
    pub(super) handles: Vec<WorkerHandle>,
    pub(super) config_view: ConfigView,
    pub(super) tx: Sender<WorkerMsg>,
    rx: Receiver<WorkerMsg>,
    reporters: Vec<&'r mut dyn Reporter>,
    /// pytest-xdist's controller as a pytest process, when the run needs one.
    pub(super) controller_session: Option<ControllerSession>,
    /// The fork server, in fork mode (`--start fork`).
    pub(super) zygote: crate::run::zygote::Zygote,
}

impl<'r> Controller<'r> {
    /// A run; `session` plays pytest-xdist's controller when the run needs one (see
    /// `controller_session.rs`), its hooks after the `.so` plugins'.
    pub fn new(
        setup: RunSetup,
        host: &'r PluginHost,
        config_view: ConfigView,
        reporters: Vec<&'r mut dyn Reporter>,
        session: Option<ControllerSession>,
    ) -> Result<Self, CliError> {
        let (tx, rx) = mpsc::channel();
        let start = setup.start;
        let hooks = Hooks::new(host).with_session(session.as_ref().map(ControllerSession::hooks));
        let state = RunState::new(setup, hooks, &config_view, session.is_some())?;
        // A plugin's scheduler may want every worker asked for: no sizing then.
        let dist = match state.dispatch.from_plugin {
            true => xdist_sched::DistMode::Each,
            false => state.setup.opts.dist,
        };
        Ok(Controller {
            state,
            handles: Vec::new(),
            config_view,
            tx,
            rx,
            reporters,
            controller_session: session,
            zygote: crate::run::zygote::Zygote::new(start, dist),
        })
    }

    /// Runs the whole session; returns the exit code and the failing node ids.
    pub fn run_outcome(mut self) -> Result<RunOutcome, CliError> {
        self.start_workers()?;
        let ticks = self.reporters.iter().any(|r| r.wants_ticks());
        let mut last_tick = Instant::now();
        while !self.state.ended() {
            if ticks && last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.emit(RunEvent::Tick);
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(msg) => self.step(Input::Worker(msg)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let (now, signals) = (Instant::now(), crate::run::signals::count());
            self.step(Input::Clock { now, signals });
        }
        if self.state.stopping.fatal.is_some() {
            self.kill_all();
        }
        self.finish_run()
    }

    fn step(&mut self, input: Input) {
        let effects = self.state.on(input);
        self.perform(effects);
    }

    /// Carries out what the run state decided.
    fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { node, cmds } => self.handles[node].send(&cmds),
                Effect::Signal { node, sig } => self.handles[node].signal(sig),
                Effect::DumpStacks { node, thread } => {
                    let h = &mut self.handles[node];
                    let signalled =
                        thread.is_some_and(|(pid, tid)| h.signal_thread(pid, tid, libc::SIGUSR1));
                    if !signalled {
                        // A remote process (or an unknown thread): ask over the channel.
                        h.send(&[Command::DumpStacks]);
                    }
                }
                Effect::KillAll => self.kill_all(),
                Effect::Spawn { spec } => {
                    if let Err(e) = self.spawn_worker(spec, false) {
                        self.state.stopping.fatal = Some(e);
                    }
                }
                Effect::Emit(ev) => self.emit(ev),
                Effect::Session(event) => {
                    if let Some(session) = &mut self.controller_session {
                        session.tell(event);
                    }
                }
            }
        }
    }

    pub(super) fn emit(&mut self, ev: RunEvent) {
        for r in self.reporters.iter_mut() {
            r.event(&ev);
        }
    }

    /// SIGKILL to every worker whose process still runs.
    fn kill_all(&mut self) {
        for (n, h) in self.state.nodes.iter().zip(&self.handles) {
            if n.is_running() {
                h.signal(libc::SIGKILL);
            }
        }
    }

    /// The plugins' `setupnodes`, then the first workers.
    fn start_workers(&mut self) -> Result<(), CliError> {
        let specs: Vec<String> = (self.state.setup.specs.iter())
            .map(|s| s.raw.clone())
            .collect();
        let r = self.state.hooks.setupnodes(&self.config_view, &specs);
        self.state.plugin_result(r);
        if let Some(session) = &mut self.controller_session {
            let r = (session.setupnodes(&specs))
                .map_err(|e| CliError::Internal(format!("pytest_xdist_setupnodes failed: {e}")));
            self.state.plugin_result(r);
        }
        if let Some(err) = self.state.stopping.fatal.take() {
            return Err(err);
        }
        let mut i = 0;
        while i < self.state.setup.workers() {
            self.spawn_worker(i, true)?;
            if i == 0 {
                if let Some(n) = self.zygote.workercount() {
                    self.state.size_to(n);
                }
            }
            i += 1;
        }
        self.state.session.spawn_fallback = self.zygote.fallback.clone();
        // Read them only once all are forked (see `WorkerHandle::start`).
        for h in &mut self.handles {
            h.start();
        }
        Ok(())
    }
}
