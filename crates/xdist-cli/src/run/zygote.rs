//! Fork mode (`--start fork`): which workers come from the run's fork server
//! (`xdist_worker::fork`), started with the first of them, and why a run spawns instead.

use std::sync::mpsc::Sender;

use serde_json::json;
use xdist_core::spec::Gateway;
use xdist_sched::DistMode;
use xdist_worker::{
    spawn_worker, ForkServer, SpawnError, WorkerHandle, WorkerMsg, WorkerSpawn, ZygoteSpawn,
};

use crate::cli::args::StartMode;

enum State {
    /// Fork mode, no worker started yet.
    Untried,
    Running(ForkServer),
    /// Spawn mode, or the fork server could not be used.
    Off,
}

pub struct Zygote {
    state: State,
    /// Why a run that asked for fork mode spawns its workers.
    pub fallback: Option<String>,
    /// The worker count once sized to the collection (see [`Zygote::workers_needed`]).
    workercount: Option<usize>,
    dist: DistMode,
}

impl Zygote {
    pub fn new(mode: StartMode, dist: DistMode) -> Zygote {
        let (state, fallback) = match mode {
            StartMode::Spawn => (State::Off, Some("requested (--start spawn)".to_string())),
            StartMode::Fork if !cfg!(target_os = "linux") => {
                (State::Off, Some("fork mode needs Linux".to_string()))
            }
            StartMode::Fork => (State::Untried, None),
        };
        Zygote {
            state,
            fallback,
            workercount: None,
            dist,
        }
    }

    /// The run's workers are spawned, for `reason` (before the first one started).
    pub fn no_fork(&mut self, reason: &str) {
        if matches!(self.state, State::Untried) {
            self.state = State::Off;
            self.fallback = Some(reason.to_string());
        }
    }

    /// Fork mode sized the run to the collection: this many workers, fewer than asked for.
    pub fn workercount(&self) -> Option<usize> {
        self.workercount
    }

    /// How many workers `self.dist` can keep busy with what the fork server collected,
    /// when fewer than `workers`.
    fn workers_needed(&self, server: &ForkServer, workers: usize) -> Option<usize> {
        let u = server.units;
        let units = match self.dist {
            DistMode::Each => return None,
            DistMode::LoadFile => u.files,
            DistMode::LoadScope => u.scopes,
            DistMode::Load | DistMode::LoadGroup | DistMode::WorkSteal => u.items,
        };
        let n = units.max(1);
        (n < workers).then_some(n)
    }

    /// Starts the worker `s` describes: forked when it can be, else spawned.
    pub fn start_worker(
        &mut self,
        s: WorkerSpawn,
        tx: &Sender<WorkerMsg>,
    ) -> Result<WorkerHandle, SpawnError> {
        if let Some(reason) = unforkable(&s) {
            self.no_fork(reason);
        }
        if matches!(self.state, State::Untried) {
            let z = ZygoteSpawn {
                key: s.key,
                python: &s.python,
                cwd: &s.cwd,
                env: &s.env,
                bootstrap: &s.bootstrap,
                interrupted: || crate::run::signals::count() > 0,
            };
            self.state = match ForkServer::start(z, tx) {
                Ok(server) => {
                    let asked = s.bootstrap.workerinput.get("workercount");
                    let asked = asked.and_then(|v| v.as_u64()).unwrap_or(1) as usize;
                    self.workercount = self.workers_needed(&server, asked);
                    State::Running(server)
                }
                Err(reason) => {
                    self.fallback = Some(reason.0);
                    State::Off
                }
            };
        }
        match &self.state {
            State::Running(server) if unforkable(&s).is_none() => {
                let (mut bootstrap, mut env) = (s.bootstrap, s.env);
                if let Some(n) = self.workercount {
                    bootstrap.workerinput.insert("workercount".into(), json!(n));
                    let name = xdist_core::env::PYTEST_XDIST_WORKER_COUNT;
                    env.retain(|(k, _)| k != name);
                    env.push((name.into(), n.to_string().into()));
                }
                server.fork(s.key, &bootstrap, &env, s.spec.nice)
            }
            _ => spawn_worker(s, tx),
        }
    }
}

/// Why this worker cannot be a child of the fork server.
fn unforkable(s: &WorkerSpawn) -> Option<&'static str> {
    let spec = &s.spec;
    if !matches!(spec.gateway, Gateway::Popen) {
        return Some("ssh/socket workers");
    }
    if spec.python.is_some() || spec.chdir.is_some() {
        return Some("a --tx spec names its own python= or chdir=");
    }
    if !spec.env.is_empty() || spec.dont_write_bytecode {
        return Some("a --tx spec sets the worker's environment");
    }
    if s.code.is_some() {
        return Some("a plugin replaces the worker code (getremotemodule)");
    }
    None
}
