//! Run state that decides without I/O: why the run stops and what it exits with, the outcome
//! ledger, Ctrl-C handling, `--max-worker-restart`, `--hang-timeout` and crash blame, and the
//! [`Effect`]s the run state (`run_state.rs`) returns for the controller loop to carry out.
//! Unit tests drive them with no process at all.

use crate::pystep::controller_session::SessionEvent;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::report::events::{CrashMoment, RunEvent};
use xdist_core::exit::ExitCode;
use xdist_core::protocol::Command;

/// After the first Ctrl-C, running tests get this long to finish.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// Time given to a hung worker to dump its Python stacks before it is killed.
pub const STACK_DUMP_WAIT: Duration = Duration::from_millis(500);

/// How a part of the run state wants the run to stop; the run state turns it into
/// [`Effect`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// Drop queued work and end every worker's session after its running test.
    StopAll,
    /// SIGKILL every live worker.
    KillAll,
}

/// What the controller loop carries out for the run state: the only I/O a decision causes.
/// `node` is an index into the node table.
#[derive(Debug)]
pub enum Effect {
    /// Commands to a worker, in one frame.
    Send { node: usize, cmds: Vec<Command> },
    /// A signal to a worker's process.
    Signal { node: usize, sig: i32 },
    /// Ask a hung worker for its Python stacks: SIGUSR1 to the thread waiting on its channel
    /// (`thread`: its pid and thread id, local workers only), else over the channel.
    DumpStacks {
        node: usize,
        thread: Option<(u32, i32)>,
    },
    /// SIGKILL every live worker.
    KillAll,
    /// Start a replacement worker for spec `spec` (see `NodeTable::next_id`).
    Spawn { spec: usize },
    /// Hand an event to the reporters.
    Emit(RunEvent),
    /// Tell the controller session (when the run has one) what happened.
    Session(SessionEvent),
}

/// How a run ends, least to most severe: the run exits with the most severe one that holds,
/// so the order of the variants is pytest's precedence of exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopReason {
    Ok,
    NoTestsCollected,
    TestsFailed,
    InternalError,
    Interrupted,
}

impl StopReason {
    pub fn exit(self) -> ExitCode {
        match self {
            StopReason::Ok => ExitCode::Ok,
            StopReason::NoTestsCollected => ExitCode::NoTestsCollected,
            StopReason::TestsFailed => ExitCode::TestsFailed,
            StopReason::InternalError => ExitCode::InternalError,
            StopReason::Interrupted => ExitCode::Interrupted,
        }
    }
}

/// What happened to the tests: the counts that fail a run.
#[derive(Debug, Default)]
pub struct Ledger {
    pub failures: u64,
    /// Tests reported failed because their worker died (not counted for `--maxfail`), and
    /// crashes no test could be blamed for: either way the run fails.
    pub crashes: u64,
    pub collect_errors: usize,
}

/// Facts known only at the end of the run that weigh on its exit code.
#[derive(Debug, Default, Clone, Copy)]
pub struct EndFacts {
    /// Every worker's `pytest_unconfigure` raised (pytest exits 1 for its own).
    pub unconfigure_failed: bool,
    /// Collected tests that never ended.
    pub not_run: usize,
    /// Nothing was collected, and that is not because this `--shard` got no tests.
    pub nothing_collected: bool,
}

/// Why the run stops early, and the Ctrl-C grace period.
#[derive(Debug, Default)]
pub struct Stop {
    /// `-x`/`--maxfail` or a worker's `session.shouldfail`/`shouldstop`.
    pub shouldfail: Option<String>,
    pub interrupted: Option<String>,
    pub internal_error: bool,
    /// Ctrl-C/SIGTERM seen: when the grace period for running tests ends.
    interrupt_deadline: Option<Instant>,
}

impl Stop {
    /// Whether the user asked the run to stop (workers killed then are no crash).
    pub fn interrupting(&self) -> bool {
        self.interrupt_deadline.is_some()
    }

    /// `count` signals seen so far (Ctrl-C, SIGTERM, SIGHUP): the first stops the run and
    /// gives running tests [`INTERRUPT_GRACE`]; a second one, or the grace's end, kills.
    pub fn on_signals(&mut self, count: u32, now: Instant) -> Vec<Halt> {
        let mut effects = Vec::new();
        if count == 0 {
            return effects;
        }
        if self.interrupt_deadline.is_none() {
            self.interrupt_deadline = Some(now + INTERRUPT_GRACE);
            self.interrupted = Some("KeyboardInterrupt".into());
            effects.push(Halt::StopAll);
        }
        if count >= 2 || self.interrupt_deadline.is_some_and(|d| now >= d) {
            effects.push(Halt::KillAll);
        }
        effects
    }

    /// A counted failure: at `--maxfail` (0: no limit) the run stops, once.
    pub fn on_failure(&mut self, ledger: &Ledger, maxfail: u64) -> Vec<Halt> {
        if maxfail > 0 && ledger.failures >= maxfail && self.shouldfail.is_none() {
            self.shouldfail = Some(format!("stopping after {} failures", ledger.failures));
            return vec![Halt::StopAll];
        }
        Vec::new()
    }

    /// A worker's `finished`: its exit status and its session's `shouldfail`/`shouldstop`.
    /// A worker interrupted on its own (a test raised `KeyboardInterrupt`) stops the run.
    pub fn on_worker_finished(
        &mut self,
        worker: &str,
        exitstatus: i32,
        reasons: [String; 2],
    ) -> Vec<Halt> {
        let mut effects = Vec::new();
        if exitstatus == ExitCode::Interrupted.code() && self.interrupted.is_none() {
            self.interrupted = Some(format!(
                "<WorkerController {worker}> received keyboard-interrupt"
            ));
            effects.push(Halt::StopAll);
        }
        for reason in reasons {
            if self.shouldfail.is_none() && !reason.is_empty() {
                self.shouldfail = Some(reason);
            }
        }
        self.internal_error |= exitstatus == ExitCode::InternalError.code();
        effects
    }

    /// Every worker collected: with collection errors the run stops there, unless
    /// `--continue-on-collection-errors`.
    pub fn on_collection_complete(&mut self, ledger: &Ledger, go_on: bool) -> Vec<Halt> {
        let n = ledger.collect_errors;
        if n == 0 || go_on {
            return Vec::new();
        }
        let s = if n == 1 { "" } else { "s" };
        self.interrupted = Some(format!("Interrupted: {n} error{s} during collection"));
        vec![Halt::StopAll]
    }

    /// The run was stopped on purpose: tests it never ran are no failure.
    pub fn stopped_on_purpose(&self) -> bool {
        self.interrupted.is_some() || self.shouldfail.is_some()
    }

    /// The most severe reason that holds.
    pub fn reason(&self, ledger: &Ledger, end: EndFacts) -> StopReason {
        let failed = end.unconfigure_failed
            || ledger.failures > 0
            || ledger.crashes > 0
            || end.not_run > 0
            || ledger.collect_errors > 0
            || self.shouldfail.is_some();
        [
            (self.interrupted.is_some(), StopReason::Interrupted),
            (self.internal_error, StopReason::InternalError),
            (failed, StopReason::TestsFailed),
            (end.nothing_collected, StopReason::NoTestsCollected),
        ]
        .into_iter()
        .filter_map(|(holds, reason)| holds.then_some(reason))
        .max()
        .unwrap_or(StopReason::Ok)
    }
}

/// Collection reports shown so far, by node id and outcome: how many times (one node id can
/// report twice, e.g. a module and its doctests skipped by one `importorskip`), and how many
/// each worker sent. Every worker collects the same, so a report is shown when a worker sends
/// it more often than any worker before.
#[derive(Debug, Default)]
pub struct CollectReports {
    shown: HashMap<String, usize>,
    sent: HashMap<(usize, String), usize>,
}

impl CollectReports {
    /// Whether `worker`'s report is news (to be shown and counted).
    pub fn first_time(&mut self, worker: usize, nodeid: &str, outcome: &str) -> bool {
        let key = format!("{nodeid}\0{outcome}");
        let sent = self.sent.entry((worker, key.clone())).or_insert(0);
        *sent += 1;
        let shown = self.shown.entry(key).or_insert(0);
        let news = *sent > *shown;
        *shown = (*shown).max(*sent);
        news
    }
}

/// What a worker's collection means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectVerdict {
    /// The first: it is the run's collection.
    First,
    /// The same as the first.
    Same,
    /// Different from the first: a collection error that stops the run.
    Differs,
    /// Different, from a replacement after collection completed: it is not used.
    Late,
}

/// `first`: the run's collection so far; `complete`: every worker collected.
pub fn judge_collection(
    first: Option<&[String]>,
    ids: &[String],
    complete: bool,
) -> CollectVerdict {
    match first {
        None => CollectVerdict::First,
        Some(first) if first == ids => CollectVerdict::Same,
        Some(_) if complete => CollectVerdict::Late,
        Some(_) => CollectVerdict::Differs,
    }
}

/// `--max-worker-restart`: how many crashed workers are replaced.
#[derive(Debug)]
pub struct RestartBudget {
    max: Option<usize>,
    crashed: usize,
}

impl RestartBudget {
    pub fn new(max: Option<usize>) -> Self {
        RestartBudget { max, crashed: 0 }
    }

    /// A worker crashed; `counts` is false when it had nothing left to run (no replacement
    /// needed). Returns the message that stops the run once the limit is passed.
    pub fn on_crash(&mut self, worker: &str, counts: bool) -> Option<String> {
        self.crashed += usize::from(counts);
        let max = self.max?;
        if self.crashed <= max {
            return None;
        }
        Some(match max {
            0 => format!("worker {worker} crashed and worker restarting disabled"),
            _ => format!("maximum crashed workers reached: {max}"),
        })
    }
}

/// One worker's `--hang-timeout` clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct HangClock {
    /// When we asked the hung worker for its stacks (SIGUSR1).
    pub stacks_requested: Option<Instant>,
    /// The test that exceeded the timeout: the worker is killed while it still runs.
    pub hung: Option<usize>,
}

/// What a worker's hang clock asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangStep {
    Nothing,
    /// Ask for the Python stacks (the test has run too long).
    DumpStacks,
    /// The same test still runs after the stack dump: kill the worker.
    Kill,
}

impl HangClock {
    /// `running`: the test the worker runs and since when.
    pub fn step(
        &mut self,
        running: Option<(usize, Instant)>,
        timeout: Duration,
        now: Instant,
    ) -> HangStep {
        match (running, self.stacks_requested) {
            (Some((idx, since)), None) if now.duration_since(since) >= timeout => {
                self.stacks_requested = Some(now);
                self.hung = Some(idx);
                HangStep::DumpStacks
            }
            (_, Some(asked)) if now.duration_since(asked) >= STACK_DUMP_WAIT => {
                let idx = running.map(|(idx, _)| idx);
                if idx.is_some() && idx == self.hung {
                    return HangStep::Kill;
                }
                if self.hung.is_some() {
                    // It ended in the meantime: slow, not hung; the kill was its alone.
                    *self = HangClock::default();
                }
                HangStep::Nothing
            }
            _ => HangStep::Nothing,
        }
    }
}

/// What is known when a worker's process is gone, to decide what that means.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lost {
    /// It sent `finished`.
    pub finished: bool,
    /// Its pytest session started (`ready`).
    pub ready: bool,
    /// Some worker's session started.
    pub session_started: bool,
    /// Another worker still runs.
    pub others_alive: bool,
    /// The run already ends with an error.
    pub fatal_pending: bool,
}

/// What a worker going down means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// It ended after `finished` (checked for an abnormal end).
    Finished,
    /// It died before any session started and none can run the tests: the run fails with
    /// why (its stderr), exit 3.
    Fatal,
    /// The run already fails with an error: nothing more to say.
    AlreadyFatal,
    /// A crash: blamed, counted and replaced.
    Crash,
}

impl Lost {
    pub fn verdict(self) -> Down {
        if self.finished {
            Down::Finished
        } else if self.fatal_pending {
            Down::AlreadyFatal
        } else if !self.ready && !self.session_started && !self.others_alive {
            Down::Fatal
        } else {
            Down::Crash
        }
    }
}

/// Who a worker's death is reported on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The test it was running failed with the crash.
    Test(usize),
    /// It died in the teardown of a test whose outcome was already shown: reported on its own.
    Teardown(usize),
    /// No test is to blame (between tests, before its session, at its end).
    Nobody,
}

/// `crashed`: the test the crash is charged to (the running one, or the worker's first
/// pending one); `outcome_of`: the last test whose outcome it sent; `done`: whether a test
/// already ended (a finished test is never blamed).
pub fn blame(
    crashed: Option<usize>,
    outcome_of: Option<usize>,
    done: impl Fn(usize) -> bool,
) -> Blame {
    match crashed {
        Some(idx) if done(idx) => Blame::Nobody,
        Some(idx) if outcome_of == Some(idx) => Blame::Teardown(idx),
        Some(idx) => Blame::Test(idx),
        None => Blame::Nobody,
    }
}

/// When a crash nobody is blamed for happened.
pub fn crash_moment(session_end: bool, ready: bool) -> CrashMoment {
    if session_end {
        CrashMoment::SessionEnd
    } else if ready {
        CrashMoment::BetweenTests
    } else {
        CrashMoment::BeforeSession
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
