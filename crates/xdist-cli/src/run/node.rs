//! One worker as the run state sees it (its streams and where it is in its life; its process
//! handle stays with the controller loop), and the table of all of them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use xdist_worker::{ExitKind, Stream};

use crate::run::state::HangClock;

/// How long a worker's channel may stay open after its process exited (a forked grandchild
/// can hold it) before the worker counts as down anyway.
pub(super) const CHANNEL_GRACE: Duration = Duration::from_secs(1);

/// How long a worker may live on after its event channel ended without `finished` (a test
/// closed or replaced it): then nothing it does can be reported, and it is killed.
pub(super) const CHANNEL_LOST_WAIT: Duration = Duration::from_secs(2);

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
    /// Its pytest session, as its events said.
    pub(super) state: NodeState,
    /// What it was told about its session's end.
    pub(super) ending: Ending,
    /// Its process.
    pub(super) life: Life,
    /// Which of its pipes ended.
    pub(super) pipes: Pipes,
    /// In the scheduler (ready and collection accepted).
    pub(super) scheduled: bool,
    pub(super) stderr_tail: VecDeque<String>,
    /// The test this worker is running (set by its first report, cleared by `done`).
    pub(super) running: Option<usize>,
    pub(super) workerinput: Map<String, Value>,
    pub(super) workerinfo: Map<String, Value>,
    /// The test running now and since when (from `logstart`).
    pub(super) started: Option<(usize, Instant)>,
    pub(super) hang: HangClock,
    /// Killed for breaking the protocol: what it sent.
    pub(super) fault: Option<crate::report::events::Fault>,
    /// Its Python process and the thread that dumps stacks on SIGUSR1 (from `ready`).
    pub(super) stack_thread: Option<(u32, i32)>,
    /// The last test whose outcome (a report with a category) it sent.
    pub(super) outcome_of: Option<usize>,
    /// The traceback of an exception out of its `pytest_unconfigure`.
    pub(super) unconfigure_error: Option<String>,
}

/// What a worker was told about the end of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Nothing yet: it runs what it is given.
    Open,
    /// `stop`, `shutdown` or `linger` went out (once).
    Told,
    /// It answered `linger`: its tests are done and it waits to run the summary step.
    Lingering,
}

/// Where a worker's process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// It runs; `channel_lost`: when its event channel ended while it lived on without
    /// having sent `finished`.
    Running { channel_lost: Option<Instant> },
    /// It exited; its pipes may still drain (see [`CHANNEL_GRACE`]).
    Exited { kind: ExitKind, at: Instant },
    /// Its end was handled (once).
    Down { kind: ExitKind },
}

/// One of the three ways a worker talks to us, each ending once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pipe {
    Channel,
    Stdout,
    Stderr,
}

/// The set of a worker's [`Pipe`]s that ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pipes(u8);

impl Pipes {
    fn bit(p: Pipe) -> u8 {
        match p {
            Pipe::Channel => 1,
            Pipe::Stdout => 2,
            Pipe::Stderr => 4,
        }
    }

    pub(super) fn end(&mut self, p: Pipe) {
        self.0 |= Pipes::bit(p);
    }

    pub(super) fn ended(self, p: Pipe) -> bool {
        self.0 & Pipes::bit(p) != 0
    }

    /// All three ended: `-s` output still in a pipe when the process exits is not lost.
    pub(super) fn all_ended(self) -> bool {
        self.0 == 7
    }
}

impl From<Stream> for Pipe {
    fn from(s: Stream) -> Pipe {
        match s {
            Stream::Stdout => Pipe::Stdout,
            Stream::Stderr => Pipe::Stderr,
        }
    }
}

impl Node {
    pub(super) fn new(key: u32, id: String, spec: usize, workerinput: Map<String, Value>) -> Self {
        Node {
            key,
            id,
            spec,
            state: NodeState::Starting,
            ending: Ending::Open,
            life: Life::Running { channel_lost: None },
            pipes: Pipes::default(),
            scheduled: false,
            stderr_tail: VecDeque::new(),
            running: None,
            workerinput,
            workerinfo: Map::new(),
            started: None,
            hang: HangClock::default(),
            unconfigure_error: None,
            fault: None,
            stack_thread: None,
            outcome_of: None,
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

    /// Its process still runs.
    pub(super) fn is_running(&self) -> bool {
        matches!(self.life, Life::Running { .. })
    }

    /// Its session was told to end (once: whether this call told it).
    pub(super) fn tell_end(&mut self) -> bool {
        let first = self.ending == Ending::Open;
        if first {
            self.ending = Ending::Told;
        }
        first
    }

    pub(super) fn told_to_end(&self) -> bool {
        self.ending != Ending::Open
    }

    /// It answered `linger`.
    pub(super) fn linger(&mut self) {
        self.ending = Ending::Lingering;
    }

    /// Its process exited with `kind` at `at`; whether that is news.
    pub(super) fn exit(&mut self, kind: ExitKind, at: Instant) -> bool {
        match self.life {
            Life::Running { .. } => {
                self.life = Life::Exited { kind, at };
                true
            }
            Life::Exited { .. } | Life::Down { .. } => false,
        }
    }

    /// Its event channel ended at `now`: lost when its process lives on without having
    /// said `finished` (whether it was).
    pub(super) fn close_channel(&mut self, now: Instant) -> bool {
        self.pipes.end(Pipe::Channel);
        let lost = self.is_running() && !self.is_finished();
        if lost {
            self.life = Life::Running {
                channel_lost: Some(now),
            };
        }
        lost
    }

    /// When its channel was lost, while its process still runs.
    pub(super) fn channel_lost(&self) -> Option<Instant> {
        match self.life {
            Life::Running { channel_lost } => channel_lost,
            _ => None,
        }
    }

    /// Exited, and its pipes ended or [`CHANNEL_GRACE`] passed by `now`.
    pub(super) fn is_down(&self, now: Instant) -> bool {
        match self.life {
            Life::Running { .. } => false,
            Life::Exited { at, .. } => {
                self.pipes.all_ended() || now.duration_since(at) >= CHANNEL_GRACE
            }
            Life::Down { .. } => true,
        }
    }

    /// Once it is down (see [`Node::is_down`]): its end to handle, once.
    pub(super) fn take_down(&mut self, now: Instant) -> Option<ExitKind> {
        match self.life {
            Life::Exited { kind, .. } if self.is_down(now) => {
                self.life = Life::Down { kind };
                Some(kind)
            }
            _ => None,
        }
    }

    /// Its process exited and its end is not handled yet.
    pub(super) fn awaits_down(&self) -> bool {
        matches!(self.life, Life::Exited { .. })
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
    /// Nodes whose event channel ended while their process lived on.
    lost_channels: Vec<usize>,
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
        self.exited += usize::from(self.nodes[i].exit(kind, at));
    }

    /// Some worker's process exited.
    pub(super) fn any_exited(&self) -> bool {
        self.exited > 0
    }

    /// Every worker is down: the run's loop ends.
    pub(super) fn all_down(&self) -> bool {
        let now = Instant::now();
        self.exited == self.nodes.len() && self.nodes.iter().all(|n| n.is_down(now))
    }

    /// Worker `i`'s event channel ended at `now`: watched if its process lives on without
    /// having sent `finished` (see [`NodeTable::lost_channels_due`]).
    pub(super) fn close_channel(&mut self, i: usize, now: Instant) {
        if self.nodes[i].close_channel(now) {
            self.lost_channels.push(i);
        }
    }

    /// The watched workers whose channel has been lost for [`CHANNEL_LOST_WAIT`] by `now`,
    /// marked [`Fault::ChannelLost`](crate::report::events::Fault) to be killed; those
    /// still within it stay watched, those whose process ended are dropped.
    pub(super) fn lost_channels_due(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        for i in std::mem::take(&mut self.lost_channels) {
            let n = &mut self.nodes[i];
            match n.channel_lost() {
                Some(at) if now.duration_since(at) >= CHANNEL_LOST_WAIT => {
                    n.fault = Some(crate::report::events::Fault::ChannelLost);
                    due.push(i);
                }
                Some(_) => self.lost_channels.push(i),
                None => {}
            }
        }
        due
    }

    /// Whether a worker other than `i` still runs.
    pub(super) fn others_alive(&self, i: usize) -> bool {
        (self.nodes.iter().enumerate()).any(|(j, n)| j != i && n.is_running())
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

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
