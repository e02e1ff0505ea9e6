//! One worker as the controller sees it: its process, its streams and where it is in its life.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use xdist_worker::{ExitKind, WorkerHandle};

use crate::run::state::HangClock;

/// How long a worker's channel may stay open after its process exited (a forked grandchild
/// can hold it) before the worker counts as down anyway.
pub(super) const CHANNEL_GRACE: Duration = Duration::from_secs(1);

/// Lines of a worker's stderr kept for crash reports.
pub(super) const STDERR_TAIL: usize = 200;

/// Where a worker is in its life, as its events said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeState {
    /// Started; its pytest session has not said `ready` yet.
    Starting,
    /// Its session is up: collecting, running tests, or told to stop.
    Ready,
    /// It sent `finished`, announcing the exit status its process must end with.
    Finished { status: i32 },
}

pub(super) struct Node {
    pub(super) key: u32,
    pub(super) id: String,
    /// Index into `RunSetup::specs`: where it runs (replacements reuse it).
    pub(super) spec: usize,
    pub(super) handle: WorkerHandle,
    pub(super) state: NodeState,
    /// In the scheduler (ready and collection accepted).
    pub(super) scheduled: bool,
    pub(super) shutdown_sent: bool,
    pub(super) exited: Option<(ExitKind, Instant)>,
    pub(super) channel_done: bool,
    pub(super) stderr_tail: VecDeque<String>,
    /// The test this worker is running (set by its first report, cleared by `done`).
    pub(super) running: Option<usize>,
    pub(super) workerinput: Map<String, Value>,
    pub(super) workerinfo: Map<String, Value>,
    pub(super) stderr_done: bool,
    /// Its stdout ended too: `-s` output still in the pipe when it exits is not lost.
    pub(super) stdout_done: bool,
    /// Its end was processed (once).
    pub(super) down_handled: bool,
    /// The test running now and since when (from `logstart`).
    pub(super) started: Option<(usize, Instant)>,
    pub(super) hang: HangClock,
    /// Killed for breaking the protocol: what it sent.
    pub(super) fault: Option<String>,
    /// Its tests are done and it waits to run the summary step (`linger`).
    pub(super) lingering: bool,
    /// Its Python process and the thread that dumps stacks on SIGUSR1 (from `ready`).
    pub(super) stack_thread: Option<(u32, i32)>,
    /// The last test whose outcome (a report with a category) it sent.
    pub(super) outcome_of: Option<usize>,
    /// When its event channel ended while the process lived on.
    pub(super) channel_lost: Option<Instant>,
    /// The traceback of an exception out of its `pytest_unconfigure`.
    pub(super) unconfigure_error: Option<String>,
}

impl Node {
    pub(super) fn new(
        key: u32,
        id: String,
        spec: usize,
        handle: WorkerHandle,
        workerinput: Map<String, Value>,
    ) -> Self {
        Node {
            key,
            id,
            spec,
            handle,
            state: NodeState::Starting,
            scheduled: false,
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
            stack_thread: None,
            outcome_of: None,
            channel_lost: None,
        }
    }

    /// Its pytest session started (and may have ended since).
    pub(super) fn is_ready(&self) -> bool {
        self.state != NodeState::Starting
    }

    pub(super) fn is_finished(&self) -> bool {
        matches!(self.state, NodeState::Finished { .. })
    }

    /// The exit status its `finished` announced.
    pub(super) fn finished_status(&self) -> Option<i32> {
        match self.state {
            NodeState::Finished { status } => Some(status),
            _ => None,
        }
    }

    pub(super) fn streams_done(&self) -> bool {
        self.channel_done && self.stderr_done && self.stdout_done
    }

    pub(super) fn is_down(&self) -> bool {
        match self.exited {
            Some((_, at)) => self.streams_done() || at.elapsed() >= CHANNEL_GRACE,
            None => false,
        }
    }
}
