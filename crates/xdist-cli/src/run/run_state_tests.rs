//! Unit tests of the run's one decision step: worker messages and the clock go in through
//! [`RunState::on`], effects come out. No process, no pipe, no reporter.

use std::time::{Duration, Instant};

use serde_json::Map;
use xdist_core::protocol::{Report, ReportOptions, WorkerEvent, WorkerInfo, PROTOCOL_VERSION};
use xdist_core::spec::XSpec;
use xdist_plugin_api::host::PluginHost;
use xdist_worker::{ExitKind, Stream, WorkerMsg};

use super::*;
use crate::cli::args::{parse_raw, split_args, validate, RawArgs, StartMode};
use crate::report::events::{Interruption, ShouldFail, XdistNote};
use crate::run::node::Node;

const IDS: [&str; 6] = [
    "t.py::a", "t.py::b", "t.py::c", "t.py::d", "t.py::e", "t.py::f",
];

/// A run of `workers` workers whose processes are only names in the node table.
struct Run {
    state: RunState<'static>,
    t0: Instant,
}

impl Run {
    fn new(workers: usize, tweak: impl FnOnce(&mut RunSetup)) -> Run {
        let (own, pytest_args) = split_args(&[]);
        let raw = parse_raw(&own).expect("no options");
        let opts = validate(raw, RawArgs::default(), pytest_args).expect("valid");
        let mut setup = RunSetup {
            opts,
            python: "python3".into(),
            cwd: "/".into(),
            specs: vec![XSpec::popen(); workers],
            remote_args: None,
            token: None,
            max_restarts: None,
            testrunuid: "uid".into(),
            run_basetemp: None,
            color: false,
            width: 80,
            mainargv: Vec::new(),
            durations: None,
            args_key: None,
            hang_timeout: None,
            start: StartMode::Spawn,
        };
        tweak(&mut setup);
        // A real host with no plugin loaded: every hook is a no-op.
        let host: &'static PluginHost = Box::leak(Box::new(PluginHost::empty()));
        let config = xdist_plugin_api::ConfigView::default();
        let state = RunState::new(setup, Hooks::new(host), &config, false).expect("scheduler");
        let mut run = Run {
            state,
            t0: Instant::now(),
        };
        for spec in 0..workers {
            run.spawned(spec, true);
        }
        run
    }

    /// What the loop does for `Effect::Spawn` (or at the start), without the process.
    fn spawned(&mut self, spec: usize, first: bool) {
        let nodes = &mut self.state.nodes;
        let (id, key) = (nodes.next_id(None, first), nodes.next_key());
        nodes.push(Node::new(key, id, spec, Map::new()));
    }

    fn events(&mut self, node: usize, events: Vec<WorkerEvent>) -> Vec<Effect> {
        self.msg(WorkerMsg::Events(node as u32, events))
    }

    fn msg(&mut self, msg: WorkerMsg) -> Vec<Effect> {
        self.state.on(Input::Worker(msg))
    }

    fn clock(&mut self, after: Duration, signals: u32) -> Vec<Effect> {
        let now = self.t0 + after;
        self.state.on(Input::Clock { now, signals })
    }

    fn ready(&mut self, node: usize, options: ReportOptions) -> Vec<Effect> {
        let ready = WorkerEvent::Ready {
            protocol: PROTOCOL_VERSION,
            info: WorkerInfo {
                pid: 4242,
                ..WorkerInfo::default()
            },
            header: Vec::new(),
            options,
            summary_plugins: Vec::new(),
            controller_plugins: Vec::new(),
            controller_reasons: Vec::new(),
            stack_thread: Some(7),
        };
        self.events(node, vec![ready])
    }

    fn collect(&mut self, node: usize, ids: &[&str]) -> Vec<Effect> {
        let finish = WorkerEvent::Collectionfinish {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            groups: Vec::new(),
            errors: 0,
            deselected: 0,
            lines: Vec::new(),
        };
        self.events(node, vec![finish])
    }

    /// Every worker up with `options` and the same collection: the tests handed out.
    fn started(
        workers: usize,
        options: ReportOptions,
        tweak: impl FnOnce(&mut RunSetup),
    ) -> (Run, Vec<Effect>) {
        let mut run = Run::new(workers, tweak);
        let mut effects = Vec::new();
        for node in 0..workers {
            effects.extend(run.ready(node, options.clone()));
            effects.extend(run.collect(node, &IDS));
        }
        (run, effects)
    }

    fn begin(&mut self, node: usize, index: usize) -> Vec<Effect> {
        self.events(
            node,
            vec![WorkerEvent::Logstart {
                i: index,
                loc: None,
            }],
        )
    }

    fn report(&mut self, node: usize, index: usize, outcome: &str) -> Vec<Effect> {
        let report = Report {
            index: Some(index),
            when: "call".into(),
            outcome: outcome.into(),
            category: outcome.into(),
            ..Report::default()
        };
        self.events(node, vec![WorkerEvent::Report(report)])
    }

    /// The process exited with `kind` and its channel and streams ended.
    fn gone(&mut self, node: usize, kind: ExitKind) -> Vec<Effect> {
        let key = node as u32;
        let mut effects = self.msg(WorkerMsg::Exited(key, kind));
        effects.extend(self.msg(WorkerMsg::ChannelClosed(key)));
        effects.extend(self.msg(WorkerMsg::OutputClosed(key, Stream::Stdout)));
        effects.extend(self.msg(WorkerMsg::OutputClosed(key, Stream::Stderr)));
        effects
    }
}

/// The tests `node` was told to run.
fn runs(effects: &[Effect], node: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for e in effects {
        if let Effect::Send { node: n, cmds } = e {
            for c in cmds.iter().filter(|_| *n == node) {
                if let xdist_core::protocol::Command::Run { indices } = c {
                    out.extend(indices);
                }
            }
        }
    }
    out
}

/// Commands sent, as `(node, debug text)`.
fn sent(effects: &[Effect]) -> Vec<(usize, String)> {
    (effects.iter())
        .filter_map(|e| match e {
            Effect::Send { node, cmds } => Some((*node, format!("{cmds:?}"))),
            _ => None,
        })
        .collect()
}

fn emitted(effects: &[Effect]) -> Vec<&RunEvent> {
    (effects.iter())
        .filter_map(|e| match e {
            Effect::Emit(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

fn spawns(effects: &[Effect]) -> Vec<usize> {
    (effects.iter())
        .filter_map(|e| match e {
            Effect::Spawn { spec } => Some(*spec),
            _ => None,
        })
        .collect()
}

fn stops(effects: &[Effect]) -> Vec<usize> {
    (sent(effects).into_iter())
        .filter(|(_, cmds)| cmds == "[Stop]")
        .map(|(n, _)| n)
        .collect()
}

fn maxfail(n: u64) -> ReportOptions {
    ReportOptions {
        maxfail: n,
        ..ReportOptions::default()
    }
}

#[test]
fn every_worker_collected_hands_out_the_tests_and_ends_the_session_after_them() {
    let (mut run, mut effects) = Run::started(2, ReportOptions::default(), |_| {});
    let mut queues = [Vec::new(), Vec::new()];
    let (mut ran, mut shutdowns) = (Vec::new(), Vec::new());
    loop {
        shutdowns.extend(
            sent(&effects)
                .into_iter()
                .filter(|(_, c)| c.contains("Shutdown")),
        );
        for (node, queue) in queues.iter_mut().enumerate() {
            queue.extend(runs(&effects, node));
        }
        let Some(node) = (0..2).find(|&n| !queues[n].is_empty()) else {
            break;
        };
        let i = queues[node].remove(0);
        run.begin(node, i);
        run.report(node, i, "passed");
        effects = run.events(node, vec![WorkerEvent::Done { i, d: 0.1 }]);
        ran.push(i);
    }
    ran.sort_unstable();
    assert_eq!(ran, (0..IDS.len()).collect::<Vec<_>>());
    shutdowns.sort();
    let once = vec![(0, "[Shutdown]".into()), (1, "[Shutdown]".into())];
    assert_eq!(
        shutdowns, once,
        "each worker is told once, when its tests are done"
    );
    assert_eq!(run.state.exit_code(), xdist_core::exit::ExitCode::Ok);
}

#[test]
fn a_crash_fails_the_running_test_and_replaces_the_worker() {
    let (mut run, effects) = Run::started(2, ReportOptions::default(), |_| {});
    let running = runs(&effects, 0)[0];
    run.begin(0, running);
    let effects = run.gone(0, ExitKind::Signal(libc::SIGSEGV));
    let events = emitted(&effects);
    assert!(matches!(events[0], RunEvent::NodeDown { worker, .. } if worker == "gw0"));
    let crashed = events.iter().find_map(|e| match e {
        RunEvent::TestCrashed(c) => Some(c),
        _ => None,
    });
    let crashed = crashed.expect("the running test is blamed");
    assert_eq!(crashed.nodeid, IDS[running]);
    assert_eq!(
        (crashed.crash.exit.as_str(), crashed.outcome.as_str()),
        ("SIGSEGV", "failed")
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, RunEvent::ReplacingWorker { worker } if worker == "gw0")));
    assert_eq!(spawns(&effects), vec![0]);
    assert_eq!(run.state.outcomes.ledger.crashes, 1);
    run.spawned(0, false);
    assert_eq!(
        run.state.nodes[2].id, "gw2",
        "a replacement gets the next id"
    );
}

#[test]
fn a_crash_in_the_teardown_of_a_reported_test_is_reported_on_its_own() {
    let (mut run, effects) = Run::started(2, ReportOptions::default(), |_| {});
    let running = runs(&effects, 0)[0];
    run.begin(0, running);
    run.report(0, running, "passed");
    let effects = run.gone(0, ExitKind::Signal(libc::SIGSEGV));
    let moment = emitted(&effects).into_iter().find_map(|e| match e {
        RunEvent::WorkerCrashed { moment, .. } => Some(moment.clone()),
        _ => None,
    });
    let nodeid = IDS[running].to_string();
    assert_eq!(
        moment,
        Some(crate::report::events::CrashMoment::Teardown { nodeid })
    );
}

#[test]
fn past_the_restart_limit_the_run_stops_instead_of_replacing() {
    let (mut run, effects) = Run::started(2, ReportOptions::default(), |s| {
        s.max_restarts = Some(0);
    });
    run.begin(0, runs(&effects, 0)[0]);
    let effects = run.gone(0, ExitKind::Code(1));
    let note = emitted(&effects).into_iter().find_map(|e| match e {
        RunEvent::Xdist(note) => Some(note.clone()),
        _ => None,
    });
    let worker = "gw0".to_string();
    assert_eq!(note, Some(XdistNote::RestartLimit { worker, max: 0 }));
    assert!(spawns(&effects).is_empty());
    assert_eq!(stops(&effects), vec![1], "the other worker is stopped");
}

#[test]
fn a_crash_after_maxfail_stopped_the_run_starts_no_replacement() {
    // Tests still queued after the stop are not run: pytest-xdist shuts down a replacement
    // that comes up while shutting down.
    let (mut run, effects) = Run::started(2, maxfail(1), |_| {});
    let (a, b) = (runs(&effects, 0)[0], runs(&effects, 1)[0]);
    run.begin(0, a);
    run.report(0, a, "failed");
    run.begin(1, b);
    let effects = run.gone(1, ExitKind::Signal(libc::SIGSEGV));
    assert!(
        spawns(&effects).is_empty(),
        "replaced after the stop: {effects:?}"
    );
    assert!(!emitted(&effects)
        .iter()
        .any(|e| matches!(e, RunEvent::ReplacingWorker { .. })));
}

#[test]
fn maxfail_stops_every_worker_once() {
    let (mut run, effects) = Run::started(2, maxfail(1), |_| {});
    let (a, b) = (runs(&effects, 0)[0], runs(&effects, 1)[0]);
    run.begin(0, a);
    let effects = run.report(0, a, "failed");
    assert_eq!(stops(&effects), vec![0, 1]);
    let maxfail = ShouldFail::MaxFail { failures: 1 };
    assert_eq!(run.state.stopping.stop.shouldfail, Some(maxfail));
    run.begin(1, b);
    let effects = run.report(1, b, "failed");
    assert!(stops(&effects).is_empty(), "stopped once: {effects:?}");
}

#[test]
fn first_ctrl_c_stops_the_second_kills_and_no_kill_is_a_crash() {
    let (mut run, effects) = Run::started(2, ReportOptions::default(), |_| {});
    run.begin(0, runs(&effects, 0)[0]);
    let first = run.clock(Duration::ZERO, 1);
    assert_eq!(stops(&first), vec![0, 1]);
    assert!(!first.iter().any(|e| matches!(e, Effect::KillAll)));
    assert!(
        run.clock(Duration::from_secs(1), 1).is_empty(),
        "one stop per signal"
    );
    let second = run.clock(Duration::from_secs(1), 2);
    assert!(matches!(second[..], [Effect::KillAll]), "{second:?}");
    let down = run.gone(0, ExitKind::Signal(libc::SIGKILL));
    assert!(
        emitted(&down).is_empty() && spawns(&down).is_empty(),
        "{down:?}"
    );
    assert_eq!(
        run.state.exit_code(),
        xdist_core::exit::ExitCode::Interrupted
    );
}

#[test]
fn ctrl_c_kills_once_the_grace_period_is_over() {
    let (mut run, _) = Run::started(1, ReportOptions::default(), |_| {});
    assert_eq!(stops(&run.clock(Duration::ZERO, 1)), vec![0]);
    let late = run.clock(crate::run::state::INTERRUPT_GRACE, 1);
    assert!(matches!(late[..], [Effect::KillAll]), "{late:?}");
}

#[test]
fn a_hung_test_gets_its_stacks_dumped_then_its_worker_killed_and_blamed() {
    let timeout = Duration::from_secs(1);
    let (mut run, effects) = Run::started(1, ReportOptions::default(), |s| {
        s.hang_timeout = Some(timeout);
    });
    let hung = runs(&effects, 0)[0];
    run.begin(0, hung);
    let dump = run.clock(timeout * 2, 0);
    assert!(
        matches!(
            dump[..],
            [Effect::DumpStacks {
                node: 0,
                thread: Some((4242, 7))
            }]
        ),
        "{dump:?}"
    );
    let kill = run.clock(timeout * 3, 0);
    assert!(
        matches!(kill[..], [Effect::Signal { node: 0, sig }] if sig == libc::SIGKILL),
        "{kill:?}"
    );
    let effects = run.gone(0, ExitKind::Signal(libc::SIGKILL));
    let crash = emitted(&effects).into_iter().find_map(|e| match e {
        RunEvent::TestCrashed(c) => Some(c.crash.hang_timeout),
        _ => None,
    });
    assert_eq!(crash, Some(Some(1.0)));
}

#[test]
fn a_collection_that_differs_is_a_collection_error_that_stops_the_run() {
    let mut run = Run::new(2, |_| {});
    run.ready(0, ReportOptions::default());
    run.ready(1, ReportOptions::default());
    run.collect(0, &IDS);
    let effects = run.collect(1, &IDS[..3]);
    let report = emitted(&effects).into_iter().find_map(|e| match e {
        RunEvent::CollectReport { worker, report, .. } => {
            Some((worker.clone(), report.outcome.clone()))
        }
        _ => None,
    });
    assert_eq!(report, Some(("gw1".to_string(), "failed".to_string())));
    assert_eq!(stops(&effects), vec![0, 1]);
    assert_eq!(run.state.outcomes.ledger.collect_errors, 1);
}

#[test]
fn collection_errors_stop_the_run_once_every_worker_collected() {
    let mut run = Run::new(1, |_| {});
    run.ready(0, ReportOptions::default());
    let error = Report {
        nodeid: Some("t.py".into()),
        when: "collect".into(),
        outcome: "failed".into(),
        ..Report::default()
    };
    run.events(0, vec![WorkerEvent::Collectreport { r: error }]);
    let effects = run.collect(0, &IDS);
    assert_eq!(stops(&effects), vec![0]);
    assert!(runs(&effects, 0).is_empty(), "no test starts");
    let errors = Interruption::CollectionErrors { count: 1 };
    assert_eq!(run.state.stopping.stop.interrupted, Some(errors));
}

#[test]
fn the_only_worker_lost_before_ready_fails_the_run() {
    let mut run = Run::new(1, |_| {});
    let effects = run.gone(0, ExitKind::Code(1));
    assert!(effects.is_empty(), "{effects:?}");
    let fatal = run.state.stopping.fatal.as_ref().map(ToString::to_string);
    let fatal = fatal.unwrap_or_default();
    assert!(
        fatal.contains("worker gw0 exited before its pytest session started (exit code 1)"),
        "{fatal}"
    );
    assert!(run.state.ended());
}

#[test]
fn a_worker_lost_before_ready_while_others_run_is_a_crash_and_replaced() {
    let mut run = Run::new(2, |_| {});
    run.ready(1, ReportOptions::default());
    let effects = run.gone(0, ExitKind::Code(1));
    let moment = emitted(&effects).into_iter().find_map(|e| match e {
        RunEvent::WorkerCrashed { moment, .. } => Some(moment.clone()),
        _ => None,
    });
    assert_eq!(
        moment,
        Some(crate::report::events::CrashMoment::BeforeSession)
    );
    assert_eq!(spawns(&effects), vec![0]);
    assert!(run.state.stopping.fatal.is_none());
}

/// What the run tells the controller session, in order.
fn told(effects: &[Effect]) -> Vec<String> {
    (effects.iter())
        .filter_map(|e| match e {
            Effect::Session(SessionEvent::NodeReady { id, .. }) => Some(format!("ready {id}")),
            Effect::Session(SessionEvent::CollectionFinished { id, ids }) => {
                Some(format!("collected {id} {}", ids.len()))
            }
            Effect::Session(SessionEvent::Report(entry)) => Some(format!("report {entry}")),
            Effect::Session(SessionEvent::Warning(_)) => Some("warning".into()),
            Effect::Session(SessionEvent::NodeDown { id, error, .. }) => {
                Some(format!("down {id} {error:?}"))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_with_a_controller_session_tells_it_each_event_as_it_happens() {
    let mut run = Run::new(2, |_| {});
    run.state.controller.has_session = true;
    let mut effects = Vec::new();
    for node in 0..2 {
        effects.extend(run.ready(node, ReportOptions::default()));
        effects.extend(run.collect(node, &IDS));
    }
    let first = runs(&effects, 0)[0];
    run.begin(0, first);
    let report = Report {
        index: Some(first),
        when: "call".into(),
        outcome: "failed".into(),
        category: "failed".into(),
        ser: Some("{\"nodeid\":\"t.py::a\"}".into()),
        ..Report::default()
    };
    effects.extend(run.events(0, vec![WorkerEvent::Report(report)]));
    effects.extend(run.gone(1, ExitKind::Signal(libc::SIGKILL)));
    assert_eq!(
        told(&effects),
        [
            "ready gw0",
            "collected gw0 6",
            "ready gw1",
            "collected gw1 6",
            "report {\"w\":\"gw0\",\"r\":{\"nodeid\":\"t.py::a\"}}",
            "down gw1 Some(\"Not properly terminated\")",
        ]
    );
    // Sent as they happen, so not kept for the end.
    assert!(run.state.controller.summary.reports.is_empty());
}

#[test]
fn a_run_without_a_controller_session_tells_it_nothing() {
    let (_, effects) = Run::started(2, ReportOptions::default(), |_| {});
    assert!(told(&effects).is_empty());
}

impl Run {
    /// Runs `node`'s test `i` to a pass.
    fn pass(&mut self, node: usize, i: usize) -> Vec<Effect> {
        self.begin(node, i);
        self.report(node, i, "passed");
        self.events(node, vec![WorkerEvent::Done { i, d: 0.1 }])
    }
}

#[test]
fn a_test_given_back_after_the_end_was_told_runs_on_a_new_worker_not_a_closing_one() {
    let (mut run, mut effects) = Run::started(2, ReportOptions::default(), |_| {});
    let mut queues = [Vec::new(), Vec::new()];
    let mut shutdowns = 0;
    // Run tests until both workers are told to end (each then holds its last test).
    while shutdowns < 2 {
        shutdowns += (sent(&effects).iter())
            .filter(|(_, c)| c.contains("Shutdown"))
            .count();
        for (node, queue) in queues.iter_mut().enumerate() {
            queue.extend(runs(&effects, node));
        }
        if shutdowns == 2 {
            break;
        }
        let node = (0..2).find(|&n| queues[n].len() > 1).expect("work left");
        let i = queues[node].remove(0);
        effects = run.pass(node, i);
    }
    let dead = (0..2)
        .find(|&n| !queues[n].is_empty())
        .expect("a worker holds its last test");
    let (other, unrun) = (1 - dead, queues[dead][0]);
    // It dies before starting its last test: the test goes back to the queue.
    let effects = run.gone(dead, ExitKind::Signal(libc::SIGKILL));
    assert!(
        runs(&effects, other).is_empty(),
        "the closing worker gets nothing new"
    );
    assert_eq!(spawns(&effects), vec![dead]);
    let mut later = Vec::new();
    for i in std::mem::take(&mut queues[other]) {
        later.extend(run.pass(other, i));
    }
    let finished = WorkerEvent::Finished {
        exitstatus: 0,
        shouldfail: serde_json::Value::Null,
        shouldstop: serde_json::Value::Null,
        workeroutput: Map::new(),
    };
    later.extend(run.events(other, vec![finished]));
    later.extend(run.gone(other, ExitKind::Code(0)));
    run.spawned(dead, false);
    later.extend(run.ready(2, ReportOptions::default()));
    later.extend(run.collect(2, &IDS));
    assert_eq!(
        runs(&later, 2),
        vec![unrun],
        "the given-back test runs on the new worker"
    );
}

/// Whether `effects` tell `node` to end its session.
fn told_to_end(effects: &[Effect], node: usize) -> bool {
    (sent(effects).iter()).any(|(n, c)| *n == node && c.contains("Shutdown"))
}

#[test]
fn a_replacement_told_to_end_while_starting_gets_no_test_given_back_later() {
    let (mut run, effects) = Run::started(2, ReportOptions::default(), |_| {});
    let mut queue = runs(&effects, 1);
    // gw0 dies before its first test: its tests go back, a replacement (node 2) starts.
    assert_eq!(
        spawns(&run.gone(0, ExitKind::Signal(libc::SIGKILL))),
        vec![0]
    );
    run.spawned(0, false);
    // gw1 runs everything but its last test; then every worker, the starting replacement
    // too, is told to end.
    let mut effects = Vec::new();
    while !told_to_end(&effects, 2) {
        assert!(queue.len() > 1, "work left: {effects:?}");
        let i = queue.remove(0);
        effects = run.pass(1, i);
        queue.extend(runs(&effects, 1));
    }
    let last = queue[0];
    // gw1 dies before its last test: it goes back, and a second replacement (node 3) starts.
    assert_eq!(
        spawns(&run.gone(1, ExitKind::Signal(libc::SIGKILL))),
        vec![1]
    );
    run.spawned(1, false);
    // The first replacement comes up after all: it ends, so it must get nothing.
    let mut effects = run.ready(2, ReportOptions::default());
    effects.extend(run.collect(2, &IDS));
    assert!(runs(&effects, 2).is_empty(), "{effects:?}");
    let mut effects = run.ready(3, ReportOptions::default());
    effects.extend(run.collect(3, &IDS));
    assert_eq!(runs(&effects, 3), vec![last], "the given-back test runs");
}
