//! One worker as the run state sees it (its streams and where it is in its life; its process
//! handle stays with the controller loop), and the table of all of them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use xdist_worker::ExitKind;

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
    pub(super) fn new(key: u32, id: String, spec: usize, workerinput: Map<String, Value>) -> Self {
        Node {
            key,
            id,
            spec,
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

/// Every worker of the run, by index (= its channel key), and what is counted over them.
#[derive(Default)]
pub(super) struct NodeTable {
    nodes: Vec<Node>,
    /// The next `gwN` a worker without an `id=` gets.
    next_gw: usize,
    /// Nodes whose process exited: until all have, no node needs a per-message look.
    exited: usize,
}

impl NodeTable {
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Node> {
        self.nodes.iter()
    }

    pub(super) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Node> {
        self.nodes.iter_mut()
    }

    /// The id of the next worker: a spec's `id=` names only the run's first (`first`),
    /// replacements get the next `gwN`.
    pub(super) fn next_id(&mut self, spec_id: Option<&str>, first: bool) -> String {
        match (spec_id, first) {
            (Some(id), true) => id.to_string(),
            _ => {
                self.next_gw += 1;
                format!("gw{}", self.next_gw - 1)
            }
        }
    }

    /// The channel key the next worker gets.
    pub(super) fn next_key(&self) -> u32 {
        self.nodes.len() as u32
    }

    pub(super) fn push(&mut self, node: Node) {
        self.nodes.push(node);
    }

    /// Worker `i`'s process exited.
    pub(super) fn set_exited(&mut self, i: usize, kind: ExitKind, at: Instant) {
        self.exited += usize::from(self.nodes[i].exited.is_none());
        self.nodes[i].exited = Some((kind, at));
    }

    /// Some worker's process exited.
    pub(super) fn any_exited(&self) -> bool {
        self.exited > 0
    }

    /// Every worker is down: the run's loop ends.
    pub(super) fn all_down(&self) -> bool {
        self.exited == self.nodes.len() && self.nodes.iter().all(Node::is_down)
    }

    /// Whether a worker other than `i` still runs.
    pub(super) fn others_alive(&self, i: usize) -> bool {
        (self.nodes.iter().enumerate()).any(|(j, n)| j != i && n.exited.is_none())
    }
}

impl std::ops::Index<usize> for NodeTable {
    type Output = Node;
    fn index(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

impl std::ops::IndexMut<usize> for NodeTable {
    fn index_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }
}
