//! Run events: what happened during a run, in order, for reporters.
//!
//! The run state is the only producer (it returns them as effects, the controller loop hands
//! them over); reporters (terminal, and file reporters) only consume. Events own their data,
//! so a decision can carry them out of the run state.

use std::time::Duration;

use xdist_core::exit::ExitCode;
use xdist_core::protocol::{Report, ReportOptions, WarningRecord};

/// One thing that happened during a run.
#[derive(Debug)]
pub enum RunEvent {
    /// The first worker is up: pytest's header lines and its resolved options.
    SessionStart {
        header: Vec<String>,
        options: Box<ReportOptions>,
        /// Why the workers are spawned, not forked (`--start fork` fell back).
        spawn_fallback: Option<String>,
    },
    /// All workers were started (`created: 2/2 workers`).
    WorkersCreated {
        count: usize,
    },
    /// Every worker collected (`2 workers [10 items]`).
    CollectionComplete {
        workers: usize,
        items: usize,
        deselected: usize,
        lines: Vec<String>,
        scheduler: String,
        /// The collected node ids, in collection order.
        ids: Vec<String>,
        /// Their recorded durations (seconds, by index), when the history knows any.
        estimates: Option<std::sync::Arc<Vec<f64>>>,
    },
    /// A test started on a worker (`-v`).
    TestStart {
        loc: String,
    },
    /// A worker started running a test (every test, whatever the verbosity).
    TestStarted {
        worker: String,
        nodeid: String,
    },
    /// A worker finished a test's whole protocol (setup, call, teardown).
    TestFinished {
        worker: String,
        nodeid: String,
    },
    /// Time passed (every ~150 ms, only while some reporter [`Reporter::wants_ticks`]).
    Tick,
    /// A test report from a worker.
    TestReport {
        worker: String,
        nodeid: String,
        report: Box<Report>,
    },
    /// A collection report that did not pass (deduplicated across workers).
    CollectReport {
        worker: String,
        nodeid: String,
        report: Box<Report>,
    },
    Warning(Box<WarningRecord>),
    /// Output a worker wrote to stdout/stderr, shown live with `-s`; also its `log_cli`
    /// records, as they are logged.
    WorkerOutput {
        worker: String,
        line: String,
        /// False for a piece of a long line: the next piece from this worker continues it.
        ends: bool,
    },
    /// `[gw0] node down: <error>`.
    NodeDown {
        worker: String,
        error: String,
    },
    /// `replacing crashed worker gw0`.
    ReplacingWorker {
        worker: String,
    },
    /// A worker died while running a test: the test failed with the crash (or, when a
    /// plugin's `handlecrashitem` said so, is run again).
    TestCrashed(Box<TestCrash>),
    /// A worker died when no test can be blamed: reported on its own, and the run fails.
    WorkerCrashed {
        crash: WorkerCrash,
        moment: CrashMoment,
    },
    /// `pytest_unconfigure` raised in a worker after its tests; `worker` is None when every
    /// worker's did, which stands for the controller's own (pytest exits 1 with the traceback).
    UnconfigureError {
        worker: Option<String>,
        traceback: String,
    },
    /// `--shard index/total` got none of the `collected` tests (the run passes).
    EmptyShard {
        index: usize,
        total: usize,
        collected: usize,
    },
    /// A fact of xdist's own (restart limit reached, tests not run, ...), shown as a line
    /// and kept for the summary.
    Xdist(XdistNote),
    /// What the controller session's hooks printed while the run waited for them (a
    /// `pytest_handlecrashitem`), shown where pytest-xdist's controller prints it.
    ControllerOutput {
        text: String,
    },
    /// pytest-cov's results, combined from the workers' data after the tests ran.
    Coverage {
        /// Written in red right after the tests (`ERROR: Coverage failure: ...`).
        error: Option<String>,
        /// The report section shown under `tests coverage`.
        report: String,
        /// `Required test coverage of N% ...` and whether it was missed.
        required: Option<(String, bool)>,
    },
    /// What the user's plugins and conftests wrote in `pytest_terminal_summary` (run by
    /// the summary step after the tests), verbatim.
    PluginSummary {
        text: String,
    },
    /// The `pytest_terminal_summary` hooks of the summary step could not run: why.
    PluginSummaryFailed {
        error: String,
    },
    /// pytest INTERNALERROR text from a worker.
    InternalError {
        text: String,
    },
    /// The run is over.
    RunFinished(RunSummary),
}

/// A fact of xdist's own, worded by `report::text::note_line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdistNote {
    /// `worker`'s crash passed `--max-worker-restart` (`max` 0: restarting is disabled).
    RestartLimit { worker: String, max: usize },
    /// Collected tests that never ended.
    NotRun { count: usize },
    /// What a plugin's `pytest_sessionfinish` returned for the summary.
    PluginSection { plugin: String, text: String },
}

/// Why a run was interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interruption {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Signal,
    /// A worker's session ended interrupted on its own (a test raised `KeyboardInterrupt`).
    Worker { worker: String },
    /// Collection errors, without `--continue-on-collection-errors`.
    CollectionErrors { count: usize },
}

/// Why a run stopped early, failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShouldFail {
    /// `-x`/`--maxfail` after `failures`.
    MaxFail { failures: u64 },
    /// A worker's `session.shouldfail`/`shouldstop`, as pytest worded it.
    Worker(String),
}

/// How a worker died, as data: the reporters word it.
#[derive(Debug, Clone)]
pub struct WorkerCrash {
    pub worker: String,
    /// How its process ended (`exit code 1`, `SIGSEGV`).
    pub exit: String,
    /// What it broke and was killed for.
    pub fault: Option<Fault>,
    /// `--hang-timeout` in seconds, when it was killed for exceeding it.
    pub hang_timeout: Option<f64>,
    /// Its last lines of stderr (a hung worker's are its Python stacks).
    pub stderr_tail: Vec<String>,
}

/// What a worker broke and was killed for, failing it like a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It sent something that is not our protocol (the decoder's error).
    Protocol(String),
    /// Its event channel was closed or replaced while its process lived on.
    ChannelLost,
}

/// When a worker died that no test is blamed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashMoment {
    /// Before its pytest session started (others went on without it).
    BeforeSession,
    /// Between two tests.
    BetweenTests,
    /// After its last test, in its session's end (`pytest_sessionfinish`, session fixtures).
    SessionEnd,
    /// After it sent `finished`, in another way than its session announced.
    AfterSession,
    /// In the teardown of a test whose outcome was already shown.
    Teardown { nodeid: String },
}

/// A test its worker died running.
#[derive(Debug)]
pub struct TestCrash {
    pub crash: WorkerCrash,
    pub nodeid: String,
    /// The crash's description, as a plugin's `handlecrashitem` may have changed it.
    pub longrepr: String,
    /// `failed`, or `rerun` when a plugin turned the crash into a rerun.
    pub outcome: String,
    /// pytest-xdist's `[gw0] linux -- Python 3.11.7 /usr/bin/python3` line, when known.
    pub infoline: Option<String>,
}

/// The outcome of a whole run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub exit: ExitCode,
    pub duration: Duration,
    /// `-x`/`--maxfail`, or a worker's session said to stop.
    pub shouldfail: Option<ShouldFail>,
    /// Ctrl-C, a worker's own interrupt, collection errors.
    pub interrupted: Option<Interruption>,
}

/// Anything that consumes run events.
pub trait Reporter {
    fn event(&mut self, event: &RunEvent);

    /// Whether this reporter wants [`RunEvent::Tick`]s (a live status area does).
    fn wants_ticks(&self) -> bool {
        false
    }
}
