//! Unit tests of the run state's decisions: no process, no I/O.

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
    assert_eq!(stop.on_signals(1, t0), vec![Halt::StopAll]);
    assert!(stop.interrupting() && stop.stopped_on_purpose());
    // The same signal seen again within the grace: nothing new.
    assert!(stop.on_signals(1, t0 + Duration::from_secs(1)).is_empty());
    assert_eq!(
        stop.on_signals(2, t0 + Duration::from_secs(1)),
        vec![Halt::KillAll]
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
        vec![Halt::KillAll]
    );
    // Two signals before the loop looked: stop and kill at once.
    let mut fresh = Stop::default();
    assert_eq!(fresh.on_signals(2, t0), vec![Halt::StopAll, Halt::KillAll]);
}

#[test]
fn maxfail_stops_once_at_the_limit() {
    let mut stop = Stop::default();
    assert!(stop.on_failure(&failed(1), 0).is_empty(), "0 is no limit");
    assert!(stop.on_failure(&failed(1), 2).is_empty());
    assert_eq!(stop.on_failure(&failed(2), 2), vec![Halt::StopAll]);
    assert_eq!(
        stop.shouldfail.as_deref(),
        Some("stopping after 2 failures")
    );
    assert!(stop.on_failure(&failed(3), 2).is_empty(), "stops once");
    // -x is --maxfail 1.
    let mut x = Stop::default();
    assert_eq!(x.on_failure(&failed(1), 1), vec![Halt::StopAll]);
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

#[test]
fn a_worker_lost_before_ready() {
    let alone = Lost::default();
    // No session anywhere and nobody else: the run fails saying why, once.
    assert_eq!(alone.verdict(), Down::Fatal);
    let fatal = Lost {
        fatal_pending: true,
        ..alone
    };
    assert_eq!(fatal.verdict(), Down::AlreadyFatal);
    // Others go on: a crash (counted, replaced), reported before its session.
    let others = Lost {
        others_alive: true,
        ..alone
    };
    assert_eq!(others.verdict(), Down::Crash);
    let started = Lost {
        session_started: true,
        ..alone
    };
    assert_eq!(started.verdict(), Down::Crash);
    assert_eq!(crash_moment(false, false), CrashMoment::BeforeSession);
    let finished = Lost {
        finished: true,
        ready: true,
        fatal_pending: true,
        ..alone
    };
    assert_eq!(finished.verdict(), Down::Finished);
}

#[test]
fn collection_errors_stop_the_run() {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (a, b) = (ids(&["t::a", "t::b"]), ids(&["t::b", "t::a"]));
    assert_eq!(judge_collection(None, &a, false), CollectVerdict::First);
    assert_eq!(judge_collection(Some(&a), &a, false), CollectVerdict::Same);
    assert_eq!(
        judge_collection(Some(&a), &b, false),
        CollectVerdict::Differs
    );
    // A replacement that collected differently after the start is not used.
    assert_eq!(judge_collection(Some(&a), &b, true), CollectVerdict::Late);
    let mut stop = Stop::default();
    assert!(stop
        .on_collection_complete(&Ledger::default(), false)
        .is_empty());
    let two = Ledger {
        collect_errors: 2,
        ..Ledger::default()
    };
    assert!(
        stop.on_collection_complete(&two, true).is_empty(),
        "--continue-on-collection-errors"
    );
    assert_eq!(
        stop.on_collection_complete(&two, false),
        vec![Halt::StopAll]
    );
    assert_eq!(
        stop.interrupted.as_deref(),
        Some("Interrupted: 2 errors during collection")
    );
    // Stopped on purpose: the tests never run are no failure, but the errors are.
    assert!(stop.stopped_on_purpose());
    assert_eq!(
        stop.reason(&two, EndFacts::default()),
        StopReason::Interrupted
    );
}

#[test]
fn collection_reports_shown_once_across_workers() {
    let mut seen = CollectReports::default();
    assert!(seen.first_time(0, "t.py", "failed"));
    assert!(
        !seen.first_time(1, "t.py", "failed"),
        "the second worker's copy"
    );
    assert!(
        seen.first_time(1, "t.py", "skipped"),
        "another outcome is news"
    );
    // One node id reporting twice (a module and its doctests): both shown, once.
    assert!(seen.first_time(0, "t.py", "failed"));
    assert!(!seen.first_time(1, "t.py", "failed"));
    // A third from one worker is more than any sent: news.
    assert!(seen.first_time(1, "t.py", "failed"));
}

#[test]
fn a_finished_worker_sets_how_the_run_stops() {
    let mut stop = Stop::default();
    let none = [String::new(), String::new()];
    assert!(stop.on_worker_finished("gw0", 0, none.clone()).is_empty());
    let reasons = [String::new(), "stopping after 1 failures".to_string()];
    assert!(stop.on_worker_finished("gw0", 1, reasons).is_empty());
    assert_eq!(
        stop.shouldfail.as_deref(),
        Some("stopping after 1 failures")
    );
    // A test's KeyboardInterrupt interrupts the run, once.
    let code = ExitCode::Interrupted.code();
    assert_eq!(
        stop.on_worker_finished("gw1", code, none.clone()),
        vec![Halt::StopAll]
    );
    assert!(stop
        .on_worker_finished("gw0", code, none.clone())
        .is_empty());
    assert_eq!(
        stop.interrupted.as_deref(),
        Some("<WorkerController gw1> received keyboard-interrupt")
    );
    stop.on_worker_finished("gw0", ExitCode::InternalError.code(), none);
    assert!(stop.internal_error);
}
