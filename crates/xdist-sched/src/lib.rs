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

use std::sync::Arc;

mod core;
mod diff;
pub mod each;
pub mod load;
pub mod no;
pub mod scope;
pub mod sim;
pub mod worksteal;

pub use diff::{collection_diff, unified_diff};
pub use each::EachScheduling;
pub use load::LoadScheduling;
pub use no::NoScheduling;
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
        DistMode::No => Box::new(NoScheduling::new(config)),
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
    No,
}

impl DistMode {
    pub const ALL: [DistMode; 7] = [
        DistMode::Each,
        DistMode::Load,
        DistMode::LoadScope,
        DistMode::LoadFile,
        DistMode::LoadGroup,
        DistMode::WorkSteal,
        DistMode::No,
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
            DistMode::No => "no",
        }
    }

    pub fn parse(name: &str) -> Option<DistMode> {
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
