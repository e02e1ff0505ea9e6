//! Run state that decides without I/O: why the run stops and what it exits with, the outcome
//! ledger, Ctrl-C handling, `--max-worker-restart`, `--hang-timeout` and crash blame. The
//! controller feeds these facts and carries out the [`Effect`]s they return; unit tests drive
//! them with no process at all.

use std::time::{Duration, Instant};

use xdist_core::events::CrashMoment;
use xdist_core::exit::ExitCode;

/// After the first Ctrl-C, running tests get this long to finish.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// Time given to a hung worker to dump its Python stacks before it is killed.
pub const STACK_DUMP_WAIT: Duration = Duration::from_millis(500);

/// What the loop must do for a decision made here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Drop queued work and end every worker's session after its running test.
    StopAll,
    /// SIGKILL every live worker.
    KillAll,
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
    /// The restart limit's message (shown in the summary).
    pub xdist_message: Option<String>,
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
    pub fn on_signals(&mut self, count: u32, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if count == 0 {
            return effects;
        }
        if self.interrupt_deadline.is_none() {
            self.interrupt_deadline = Some(now + INTERRUPT_GRACE);
            self.interrupted = Some("KeyboardInterrupt".into());
            effects.push(Effect::StopAll);
        }
        if count >= 2 || self.interrupt_deadline.is_some_and(|d| now >= d) {
            effects.push(Effect::KillAll);
        }
        effects
    }

    /// A counted failure: at `--maxfail` (0: no limit) the run stops, once.
    pub fn on_failure(&mut self, ledger: &Ledger, maxfail: u64) -> Vec<Effect> {
        if maxfail > 0 && ledger.failures >= maxfail && self.shouldfail.is_none() {
            self.shouldfail = Some(format!("stopping after {} failures", ledger.failures));
            return vec![Effect::StopAll];
        }
        Vec::new()
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
pub fn crash_moment(session_end: bool, ready: bool) -> CrashMoment<'static> {
    if session_end {
        CrashMoment::SessionEnd
    } else if ready {
        CrashMoment::BetweenTests
    } else {
        CrashMoment::BeforeSession
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(failures: u64) -> Ledger {
        Ledger {
            failures,
            ..Ledger::default()
        }
    }

    #[test]
    fn exit_code_is_the_most_severe_reason() {
        let mut stop = Stop::default();
        let clean = EndFacts::default();
        assert_eq!(stop.reason(&Ledger::default(), clean), StopReason::Ok);
        let empty = EndFacts {
            nothing_collected: true,
            ..clean
        };
        assert_eq!(
            stop.reason(&Ledger::default(), empty).exit(),
            ExitCode::NoTestsCollected
        );
        assert_eq!(stop.reason(&failed(1), empty).exit(), ExitCode::TestsFailed);
        stop.internal_error = true;
        assert_eq!(
            stop.reason(&failed(1), empty).exit(),
            ExitCode::InternalError
        );
        stop.interrupted = Some("KeyboardInterrupt".into());
        assert_eq!(stop.reason(&failed(1), empty).exit(), ExitCode::Interrupted);
    }

    #[test]
    fn crashes_unrun_tests_and_collection_errors_fail_the_run() {
        let stop = Stop::default();
        let crashed = Ledger {
            crashes: 1,
            ..Ledger::default()
        };
        assert_eq!(
            stop.reason(&crashed, EndFacts::default()),
            StopReason::TestsFailed
        );
        let collect = Ledger {
            collect_errors: 2,
            ..Ledger::default()
        };
        assert_eq!(
            stop.reason(&collect, EndFacts::default()),
            StopReason::TestsFailed
        );
        for end in [
            EndFacts {
                not_run: 3,
                ..EndFacts::default()
            },
            EndFacts {
                unconfigure_failed: true,
                ..EndFacts::default()
            },
        ] {
            assert_eq!(
                stop.reason(&Ledger::default(), end),
                StopReason::TestsFailed
            );
        }
    }

    #[test]
    fn first_ctrl_c_stops_and_the_second_kills() {
        let mut stop = Stop::default();
        let t0 = Instant::now();
        assert!(stop.on_signals(0, t0).is_empty());
        assert_eq!(stop.on_signals(1, t0), vec![Effect::StopAll]);
        assert!(stop.interrupting() && stop.stopped_on_purpose());
        // The same signal seen again within the grace: nothing new.
        assert!(stop.on_signals(1, t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(
            stop.on_signals(2, t0 + Duration::from_secs(1)),
            vec![Effect::KillAll]
        );
        assert_eq!(
            stop.reason(&Ledger::default(), EndFacts::default()).exit(),
            ExitCode::Interrupted
        );
    }

    #[test]
    fn ctrl_c_grace_ends_in_a_kill() {
        let mut stop = Stop::default();
        let t0 = Instant::now();
        stop.on_signals(1, t0);
        assert!(stop.on_signals(1, t0 + INTERRUPT_GRACE / 2).is_empty());
        assert_eq!(
            stop.on_signals(1, t0 + INTERRUPT_GRACE),
            vec![Effect::KillAll]
        );
        // Two signals before the loop looked: stop and kill at once.
        let mut fresh = Stop::default();
        assert_eq!(
            fresh.on_signals(2, t0),
            vec![Effect::StopAll, Effect::KillAll]
        );
    }

    #[test]
    fn maxfail_stops_once_at_the_limit() {
        let mut stop = Stop::default();
        assert!(stop.on_failure(&failed(1), 0).is_empty(), "0 is no limit");
        assert!(stop.on_failure(&failed(1), 2).is_empty());
        assert_eq!(stop.on_failure(&failed(2), 2), vec![Effect::StopAll]);
        assert_eq!(
            stop.shouldfail.as_deref(),
            Some("stopping after 2 failures")
        );
        assert!(stop.on_failure(&failed(3), 2).is_empty(), "stops once");
        // -x is --maxfail 1.
        let mut x = Stop::default();
        assert_eq!(x.on_failure(&failed(1), 1), vec![Effect::StopAll]);
        assert_eq!(
            x.reason(&failed(1), EndFacts::default()),
            StopReason::TestsFailed
        );
    }

    #[test]
    fn restart_limit() {
        let mut unlimited = RestartBudget::new(None);
        assert!((0..50).all(|_| unlimited.on_crash("gw0", true).is_none()));
        let mut none = RestartBudget::new(Some(0));
        assert_eq!(
            none.on_crash("gw1", true).as_deref(),
            Some("worker gw1 crashed and worker restarting disabled")
        );
        let mut two = RestartBudget::new(Some(2));
        assert!(two.on_crash("gw0", true).is_none());
        // A worker that died at its session's end needs no replacement: not counted.
        assert!(two.on_crash("gw0", false).is_none());
        assert!(two.on_crash("gw1", true).is_none());
        assert_eq!(
            two.on_crash("gw2", true).as_deref(),
            Some("maximum crashed workers reached: 2")
        );
    }

    #[test]
    fn hang_timeout_dumps_stacks_then_kills() {
        let timeout = Duration::from_secs(10);
        let t0 = Instant::now();
        let running = Some((7, t0));
        let mut clock = HangClock::default();
        assert_eq!(
            clock.step(running, timeout, t0 + Duration::from_secs(9)),
            HangStep::Nothing
        );
        assert_eq!(
            clock.step(running, timeout, t0 + timeout),
            HangStep::DumpStacks
        );
        assert_eq!(clock.hung, Some(7));
        let later = t0 + timeout + STACK_DUMP_WAIT;
        assert_eq!(clock.step(running, timeout, later), HangStep::Kill);
    }

    #[test]
    fn a_test_ending_during_the_stack_dump_was_slow_not_hung() {
        let timeout = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut clock = HangClock::default();
        assert_eq!(
            clock.step(Some((3, t0)), timeout, t0 + timeout),
            HangStep::DumpStacks
        );
        // The worker moved on to test 4 before the wait ended.
        let moved_on = Some((4, t0 + timeout));
        let after = t0 + timeout + STACK_DUMP_WAIT;
        assert_eq!(clock.step(moved_on, timeout, after), HangStep::Nothing);
        assert_eq!(clock.hung, None);
        assert_eq!(clock.stacks_requested, None);
        assert!(clock.step(None, timeout, after).eq(&HangStep::Nothing));
    }

    #[test]
    fn crash_blame() {
        let none_done = |_| false;
        // The running test is blamed.
        assert_eq!(blame(Some(4), Some(3), none_done), Blame::Test(4));
        // Its outcome was shown already: a teardown crash, reported on its own.
        assert_eq!(blame(Some(4), Some(4), none_done), Blame::Teardown(4));
        // A finished test is never blamed, nor anyone when nothing ran.
        assert_eq!(blame(Some(4), Some(4), |i| i == 4), Blame::Nobody);
        assert_eq!(blame(None, Some(4), none_done), Blame::Nobody);
        assert_eq!(crash_moment(true, true), CrashMoment::SessionEnd);
        assert_eq!(crash_moment(false, true), CrashMoment::BetweenTests);
        // A worker lost before `ready`.
        assert_eq!(crash_moment(false, false), CrashMoment::BeforeSession);
    }
}
