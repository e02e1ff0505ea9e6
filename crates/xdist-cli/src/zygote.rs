//! Fork mode (`--start fork`): which workers come from the run's fork server
//! (`xdist_worker::fork`), started with the first of them, and why a run spawns instead.

use std::sync::mpsc::Sender;

use xdist_core::spec::Gateway;
use xdist_worker::{
    spawn_worker, ForkServer, SpawnError, WorkerHandle, WorkerMsg, WorkerSpawn, ZygoteSpawn,
};

use crate::args::StartMode;

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
}

impl Zygote {
    pub fn new(mode: StartMode) -> Zygote {
        let (state, fallback) = match mode {
            StartMode::Spawn => (State::Off, None),
            StartMode::Fork if !cfg!(target_os = "linux") => {
                (State::Off, Some("fork mode needs Linux".to_string()))
            }
            StartMode::Fork => (State::Untried, None),
        };
        Zygote { state, fallback }
    }

    /// Tests the fork server collected, once it runs.
    pub fn items(&self) -> Option<usize> {
        match &self.state {
            State::Running(f) => Some(f.items),
            _ => None,
        }
    }

    /// Starts the worker `s` describes: forked when it can be, else spawned.
    pub fn start_worker(
        &mut self,
        s: WorkerSpawn,
        tx: &Sender<WorkerMsg>,
    ) -> Result<WorkerHandle, SpawnError> {
        if let Some(reason) = unforkable(&s) {
            if matches!(self.state, State::Untried) {
                self.state = State::Off;
                self.fallback = Some(reason.to_string());
            }
        }
        if matches!(self.state, State::Untried) {
            let z = ZygoteSpawn {
                key: s.key,
                python: &s.python,
                cwd: &s.cwd,
                env: &s.env,
                bootstrap: &s.bootstrap,
            };
            self.state = match ForkServer::start(z, tx) {
                Ok(server) => State::Running(server),
                Err(reason) => {
                    self.fallback = Some(reason.0);
                    State::Off
                }
            };
        }
        match &self.state {
            State::Running(server) if unforkable(&s).is_none() => {
                server.fork(s.key, &s.bootstrap, &s.env, s.spec.nice)
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
