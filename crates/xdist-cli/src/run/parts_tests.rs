//! Unit tests of the run state's parts: each decides on its own, no process, no I/O.

use super::*;

fn warning(message: &str, when: &str) -> WarningRecord {
    WarningRecord {
        message: message.into(),
        location: Some("t.py:1".into()),
        when: when.into(),
        nodeid: String::new(),
        reportlog: None,
        summary: None,
    }
}

#[test]
fn the_first_ready_starts_the_session_with_its_options() {
    let mut session = Session::default();
    let first = ReportOptions {
        maxfail: 2,
        ..ReportOptions::default()
    };
    assert!(session.start(&first));
    assert!(!session.start(&ReportOptions::default()), "only the first");
    assert!(session.started);
    assert_eq!(
        session.options.maxfail, 2,
        "the first worker's options stay"
    );
}

#[test]
fn the_run_collection_judges_the_others_and_names_its_tests() {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut c = RunCollection::default();
    assert_eq!((c.len(), c.nodeid(0)), (0, None));
    assert_eq!(c.judge(&ids(&["a"])), CollectVerdict::First);
    c.tests = Some(Arc::new(Collection {
        ids: ids(&["a", "b"]),
        groups: Vec::new(),
    }));
    assert_eq!(c.judge(&ids(&["a", "b"])), CollectVerdict::Same);
    assert_eq!(c.judge(&ids(&["a"])), CollectVerdict::Differs);
    c.complete = true;
    assert_eq!(c.judge(&ids(&["a"])), CollectVerdict::Late);
    assert_eq!(
        (c.len(), c.nodeid(1), c.nodeid(2)),
        (2, Some("b".into()), None)
    );
}

#[test]
fn what_every_worker_sends_alike_is_news_once() {
    let mut shown = ShownOnce::default();
    let early = warning("deprecated", "collect");
    assert!(shown.news_warning(&early));
    assert!(!shown.news_warning(&early), "the next worker's is the same");
    let in_test = warning("deprecated", "runtest");
    assert!(shown.news_warning(&in_test) && shown.news_warning(&in_test));
    assert!(shown.news_log(false, "x") && shown.news_log(false, "x"));
    assert!(shown.news_log(true, "late") && !shown.news_log(true, "late"));
    assert!(shown.news_collect_report(0, "t.py", "skipped"));
    assert!(!shown.news_collect_report(1, "t.py", "skipped"));
}

#[test]
fn failures_are_counted_by_kind_and_their_ids_kept_once() {
    let mut o = Outcomes::default();
    o.record(Failure::Test, "t.py::a");
    o.record(Failure::Crash, "t.py::a");
    o.record(Failure::Collection, "u.py");
    o.record(Failure::Test, "t.py::b");
    let l = &o.ledger;
    assert_eq!((l.failures, l.crashes, l.collect_errors), (2, 1, 1));
    assert_eq!(o.take_failed(), ["t.py::a", "u.py", "t.py::b"]);
}

#[test]
fn a_test_that_ended_or_crashed_is_not_left_unrun() {
    let mut o = Outcomes::default();
    o.done(0);
    o.done(1);
    o.crashed(1);
    o.crashed(2);
    assert!(o.is_done(1) && !o.is_done(2));
    assert_eq!(o.not_ended(5), 2);
    assert_eq!(o.not_ended(2), 0, "never below zero");
}

#[test]
fn the_first_fatal_error_is_the_one_the_run_ends_with() {
    let mut s = Stopping::new(None);
    s.fail(CliError::Internal("first".into()));
    s.fail(CliError::Internal("second".into()));
    assert_eq!(s.fatal.map(|e| e.to_string()), Some("first".into()));
}

#[test]
fn the_summary_step_runs_in_a_worker_only_for_its_plugins_alone() {
    let mut c = ControllerSide::new(false);
    assert!(!c.wants_reports() && !c.summary_in_worker(false));
    c.summary.plugins = vec!["p".into()];
    assert!(c.wants_reports() && c.summary_in_worker(false));
    assert!(!c.summary_in_worker(true), "--no-summary");
    c.summary.controller_plugins = vec!["cov".into()];
    assert!(c.wants_reports() && !c.summary_in_worker(false));
    let session = ControllerSide::new(true);
    assert!(session.wants_reports() && !session.summary_in_worker(false));
}
