//! Test schedulers for xdist: pure, synchronous state machines.
//!
//! A scheduler decides which worker runs which test. It never touches a process, a pipe or a
//! clock: the controller loop feeds it events (a worker joined, a worker finished collecting, a
//! test completed, a worker died) and the scheduler answers with [`Action`]s pushed into an
//! output vector (send these test indices to that worker, ask that worker to give tests back,
//! shut that worker down). That makes every scheduler testable without Python.
//!
//! Tests are named by their *index* into the collection (the ordered list of node ids every
//! worker collected). Workers are named by [`NodeKey`], a controller-assigned handle that is
//! never reused, so a replacement worker is a new key.
//!
//! The worker protocol has one rule every scheduler must respect (pytest needs `nextitem` to
//! keep module fixtures alive): a worker only *starts* a test once it holds the next one or has
//! been told to shut down. The scheduler therefore counts the running test as pending until
//! [`Scheduling::mark_test_complete`], and [`Scheduling::tests_finished`] becomes true once every
//! node has fewer than two pending tests and nothing is left to hand out; the controller then
//! shuts every node down so each runs its last test with `nextitem=None`.
//!
//! Main types:
//! - [`Scheduling`]: the one trait every mode implements (the protocol of pytest-xdist's
//!   `Scheduling`, with actions returned instead of sent).
//! - [`Collection`]: the ordered node ids plus per-test metadata (`xdist_group` names, estimated
//!   durations from earlier runs).
//! - [`Action`]: what the controller must send to which node.
//! - [`DistMode`] and [`make_scheduler`]: choose a scheduler by `--dist` name.
//! - [`collection_diff`]: pytest-xdist's "Different tests were collected" message.
//! - [`sim`]: a seeded simulator of a controller and its workers, to test any scheduler.
//!
//! # Contract with the controller
//!
//! - Call [`Scheduling::add_node`] when a worker is ready, [`Scheduling::add_node_collection`]
//!   when it has collected, and [`Scheduling::schedule`] whenever
//!   [`Scheduling::collection_is_completed`] is true after a collection arrived.
//! - Send the returned actions in order. Schedulers never emit an action for a node after its
//!   `Shutdown`, never an empty `Run`, and never an action for a removed node.
//! - As soon as [`Scheduling::tests_finished`] becomes true inside a call, the scheduler itself
//!   emits `Shutdown` for every node not yet shut down, so the controller's own
//!   "shut everything down" is normally a no-op. When the controller does send `Shutdown` on
//!   its own (after `tests_finished` turned true outside a call, `-x`, Ctrl-C), it should call
//!   [`Scheduling::mark_node_shutdown`] so the scheduler never targets that node again; and it
//!   should drop a `Shutdown` the scheduler emits for a node it has already shut down.
//! - Every test ends exactly once: completed, or returned by [`Scheduling::remove_node`] as the
//!   crash item (which is only run again if [`Scheduling::mark_test_pending`] is called).
//!
//! # The schedulers
//!
//! **`load`** ([`LoadScheduling`]) follows pytest-xdist's formulas exactly: with fewer than two
//! tests per node the tests are dealt round-robin one at a time (nodes that get nothing are
//! shut down at once); otherwise each node gets one consecutive chunk of
//! `max(2, min(n / nodes / 4, maxschedchunk))` tests. After each completion, the node is
//! refilled from the front of the queue when it holds fewer than
//! `max(2, queued / nodes / 4)` tests, up to `max(2, queued / nodes / 2)` and at most
//! `max(2 - pending, maxschedchunk)` at a time, except that a node that just took 0.1 s or more
//! and still holds two tests waits. A crashed node's running test is reported and its other
//! tests go to the end of the queue. With duration history the queue is sorted longest first
//! (LPT), so the slow tests start first.
//!
//! **`each`** ([`EachScheduling`]) sends the whole collection to every node, followed by
//! `Shutdown`. A crashed node's remaining tests wait for a replacement with the same `--tx`
//! spec; a replacement with nothing to take is shut down at once, and a node that died before
//! it started leaves its full run to its replacement, so each worker slot runs each test once.
//!
//! **`loadscope`, `loadfile`, `loadgroup`** ([`ScopeScheduling`]) hand out whole work units:
//! the scope (`nodeid.rsplit("::", 1)[0]`), the file (`nodeid.split("::", 1)[0]`) or the
//! `xdist_group` name from [`Collection::groups`] (ungrouped tests are units of one test). With
//! `--loadscope-reorder` units go biggest first (stable; by total estimated time when duration
//! history exists), otherwise in first-seen order. Each node starts with one unit, then takes
//! another whenever it holds at most two tests (and keeps taking until it holds two, so it can
//! start); nodes beyond the number of units are shut down at once, and each node is shut down
//! as soon as the queue is empty. Unlike pytest-xdist, a crash never re-runs the crashing test
//! and never re-sends completed tests: the unfinished units of the dead node go back to the
//! front of the queue as units. `mark_test_pending` re-attaches a test to its unit when the
//! unit is queued or still on a node that takes work, else queues it as a unit of its own.
//!
//! **`worksteal`** ([`WorkStealingScheduling`]) splits the queue evenly over idle nodes (node
//! `i` of `k` gets `queued / (k - i)` tests), then lets a node that runs dry ask the busiest node
//! (most tests, or most estimated time with duration history) to give back its last
//! `min(len / 2, len - 2)` tests, one steal in flight at a time; the answer comes back through
//! [`Scheduling::remove_pending_tests_from_node`]. Tests sharing an `xdist_group` form one unit
//! that is handed out, and stolen, only as a whole: a steal never takes a node's running unit,
//! and a partial answer that would split a group sends that part back to the same node. With
//! duration history, units are dealt longest first to the least loaded idle node. When nothing
//! can be stolen, idle nodes are shut down so they run their last test.
//!
//! **`no`** is not a scheduler of its own: `--dist no` means `load`, as pytest-xdist's `-n N`
//! turns `no` into `load` ([`DistMode::parse`]).
//!
//! Every scheduler keeps per-test state in arrays and per-node queues with lazy deletion, so a
//! run costs time linear in the number of tests (100 000 tests over 8 nodes schedule in well
//! under a second, see `tests/perf.rs`).

use std::sync::Arc;

mod core;
mod diff;
pub mod each;
pub mod load;
pub mod scope;
pub mod sim;
pub mod worksteal;

pub use diff::{collection_diff, unified_diff};
pub use each::EachScheduling;
pub use load::LoadScheduling;
pub use scope::{ScopeKind, ScopeScheduling};
pub use worksteal::WorkStealingScheduling;

/// Create the built-in scheduler for `mode`.
pub fn make_scheduler(mode: DistMode, config: SchedConfig) -> Box<dyn Scheduling> {
    match mode {
        DistMode::Each => Box::new(EachScheduling::new(config)),
        DistMode::Load => Box::new(LoadScheduling::new(config)),
        DistMode::LoadScope => Box::new(ScopeScheduling::new(ScopeKind::Scope, config)),
        DistMode::LoadFile => Box::new(ScopeScheduling::new(ScopeKind::File, config)),
        DistMode::LoadGroup => Box::new(ScopeScheduling::new(ScopeKind::Group, config)),
        DistMode::WorkSteal => Box::new(WorkStealingScheduling::new(config)),
    }
}

/// A worker as the scheduler sees it. Assigned by the controller, unique for the whole run
/// (a replacement worker gets a fresh key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey(pub u32);

/// The tests one worker collected, in collection order, with the metadata schedulers use.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Collection {
    /// pytest node ids, exactly as pytest reports them (never rewritten).
    pub ids: Vec<String>,
    /// Per test: the `xdist_group` names from all its marks, de-duplicated, sorted and joined
    /// with `_` (pytest-xdist's naming), or `None` when the test has no group mark.
    /// Either empty (no test is grouped) or the same length as `ids`.
    pub groups: Vec<Option<String>>,
}

impl Collection {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The group of test `index`, if it has one.
    pub fn group(&self, index: usize) -> Option<&str> {
        self.groups.get(index).and_then(|g| g.as_deref())
    }
}

/// What the controller must do on behalf of a scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Append these test indices to the node's run queue (`runtests`).
    Run { node: NodeKey, indices: Vec<usize> },
    /// Ask the node to give back these queued indices, all or none (`steal`); the node answers
    /// and the controller calls [`Scheduling::remove_pending_tests_from_node`].
    Steal { node: NodeKey, indices: Vec<usize> },
    /// Tell the node to finish what it has queued and exit (`shutdown`).
    Shutdown { node: NodeKey },
}

/// Options that shape scheduling, taken from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedConfig {
    /// Number of workers the run was started with (pytest-xdist's `numnodes`): collection is
    /// complete once this many nodes sent their collection.
    pub num_nodes: usize,
    /// `--maxschedchunk` (`load` only); `None` = unlimited.
    pub max_sched_chunk: Option<usize>,
    /// `--loadscope-reorder` (default) / `--no-loadscope-reorder`.
    pub loadscope_reorder: bool,
    /// Estimated duration per test index (seconds) from earlier runs, aligned with the
    /// collection; `None` = no history or `--no-durations`. `load` and `worksteal` start the
    /// longest tests first when present.
    pub durations: Option<Arc<Vec<f64>>>,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            num_nodes: 1,
            max_sched_chunk: None,
            loadscope_reorder: true,
            durations: None,
        }
    }
}

/// Scheduler errors: protocol misuse by the caller, never bad user input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedError {
    #[error("{mode} does not support rescheduling a test")]
    Unsupported { mode: &'static str },
    #[error("unknown node {0:?}")]
    UnknownNode(NodeKey),
    #[error("test index {0} is not in the collection")]
    UnknownTest(usize),
}

/// The scheduling protocol (pytest-xdist's `Scheduling`), as a pure state machine.
///
/// Every method that may lead to messages pushes them onto `out`; the controller sends them in
/// order. Implementations must never emit an action for a node after emitting its `Shutdown`.
pub trait Scheduling: Send {
    /// The scheduler's class name as pytest-xdist prints it with `-v`
    /// (`scheduling tests via LoadScheduling`).
    fn name(&self) -> &'static str;
    /// Nodes currently known to the scheduler, in the order they were added.
    fn nodes(&self) -> Vec<NodeKey>;
    /// True once `num_nodes` nodes have sent their collection.
    fn collection_is_completed(&self) -> bool;
    /// True when nothing is left to hand out and every node has fewer than two pending tests
    /// (and no steal is in flight): the controller then shuts every node down.
    fn tests_finished(&self) -> bool;
    /// True while some test is not yet completed (queued globally or pending on a node).
    fn has_pending(&self) -> bool;
    /// A new worker (fresh or replacement) is ready. `spec` is its `--tx` spec string
    /// (`each` matches replacements to dead nodes by spec).
    fn add_node(&mut self, node: NodeKey, spec: &str);
    /// [`Scheduling::add_node`] with the worker's id (`gw0`), for schedulers that show their
    /// nodes by it (a Python plugin's, whose nodes are pytest-xdist's `WorkerController`s).
    fn add_worker(&mut self, node: NodeKey, spec: &str, workerid: &str) {
        let _ = workerid;
        self.add_node(node, spec);
    }
    /// The node finished collecting. The controller has already checked that the collection
    /// equals the first one (or, for `each`, that of the node it replaces).
    fn add_node_collection(&mut self, node: NodeKey, collection: Arc<Collection>);
    /// The node finished test `index` (its whole protocol: setup, call, teardown) in
    /// `duration` seconds.
    fn mark_test_complete(
        &mut self,
        node: NodeKey,
        index: usize,
        duration: f64,
        out: &mut Vec<Action>,
    );
    /// Put test `index` back in the queue (front), used by crash handlers that want a rerun.
    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError>;
    /// The node gave back these queued tests (answer to [`Action::Steal`]; possibly empty).
    fn remove_pending_tests_from_node(
        &mut self,
        node: NodeKey,
        indices: &[usize],
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError>;
    /// The node is gone (finished or crashed). Returns the index of the test it was running
    /// (the first of its pending tests), if any; its other pending tests go back to the queue
    /// and may be handed to other nodes at once.
    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize>;
    /// Hand out work: called once when collection completes, and again whenever a node joins
    /// later (a replacement finished collecting).
    fn schedule(&mut self, out: &mut Vec<Action>);
    /// The controller sent `Shutdown` to this node on its own (for example after
    /// [`Scheduling::tests_finished`], on `-x`, or on Ctrl-C). The scheduler then never sends
    /// the node anything again. Provided so that existing implementations keep compiling; the
    /// built-in schedulers all honour it. Calling it for a node the scheduler already shut down
    /// (or an unknown node) is harmless.
    fn mark_node_shutdown(&mut self, node: NodeKey) {
        let _ = node;
    }
}

/// The `--dist` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistMode {
    Each,
    Load,
    LoadScope,
    LoadFile,
    LoadGroup,
    WorkSteal,
}

impl DistMode {
    pub const ALL: [DistMode; 6] = [
        DistMode::Each,
        DistMode::Load,
        DistMode::LoadScope,
        DistMode::LoadFile,
        DistMode::LoadGroup,
        DistMode::WorkSteal,
    ];

    /// The name used by `--dist`.
    pub fn as_str(self) -> &'static str {
        match self {
            DistMode::Each => "each",
            DistMode::Load => "load",
            DistMode::LoadScope => "loadscope",
            DistMode::LoadFile => "loadfile",
            DistMode::LoadGroup => "loadgroup",
            DistMode::WorkSteal => "worksteal",
        }
    }

    /// A `--dist` name; `no` is `load` (pytest-xdist turns `no` into `load` under `-n N`, and
    /// xdist always distributes).
    pub fn parse(name: &str) -> Option<DistMode> {
        if name == "no" {
            return Some(DistMode::Load);
        }
        DistMode::ALL.iter().copied().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for DistMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub fn cfg(num_nodes: usize) -> SchedConfig {
        SchedConfig {
            num_nodes,
            ..SchedConfig::default()
        }
    }

    pub fn collection(n: usize) -> Collection {
        Collection {
            ids: (0..n).map(|i| format!("test_m.py::test_{i}")).collect(),
            groups: Vec::new(),
        }
    }

    pub fn run(node: u32, indices: Vec<usize>) -> Action {
        Action::Run {
            node: NodeKey(node),
            indices,
        }
    }

    pub fn steal(node: u32, indices: Vec<usize>) -> Action {
        Action::Steal {
            node: NodeKey(node),
            indices,
        }
    }

    pub fn shutdown(node: u32) -> Action {
        Action::Shutdown {
            node: NodeKey(node),
        }
    }

    /// Add `nodes` nodes (keys 0..nodes) with the same collection and run the first schedule.
    pub fn started_with<S: Scheduling>(mut s: S, coll: Collection, nodes: u32) -> (S, Vec<Action>) {
        let coll = Arc::new(coll);
        for k in 0..nodes {
            s.add_node(NodeKey(k), "popen");
        }
        for k in 0..nodes {
            s.add_node_collection(NodeKey(k), coll.clone());
        }
        assert!(s.collection_is_completed());
        let mut out = Vec::new();
        s.schedule(&mut out);
        (s, out)
    }

    pub fn started<S: Scheduling>(s: S, n: usize, nodes: u32) -> (S, Vec<Action>) {
        started_with(s, collection(n), nodes)
    }
}
