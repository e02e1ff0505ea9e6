//! The wording of worker failures: a worker that died running a test becomes that test's
//! report, one that died between tests a line of its own, a `pytest_unconfigure` that raised
//! a traceback or a warning. The run loop sends the facts
//! ([`TestCrash`], [`WorkerCrash`]); the reporters word them here.

use crate::report::events::{CrashMoment, TestCrash, WorkerCrash};
use serde_json::{json, Map};
use xdist_core::protocol::Report;

/// Lines of a crashed worker's stderr shown with a crash no test is blamed for (all of
/// them for a hung worker: its stacks).
const SESSION_CRASH_TAIL: usize = 10;

/// What a plugin's `handlecrashitem` sees as the crash's `longrepr` before it changes it.
pub fn headline(worker: &str, nodeid: &str) -> String {
    format!("worker '{worker}' crashed while running '{nodeid}'")
}

/// The crashed test's report; `short` is `(width, color)` for the terminal's short-summary
/// line (the file reporters need none).
pub fn test_report(c: &TestCrash, short: Option<(usize, bool)>) -> Report {
    let (nodeid, w) = (c.nodeid.as_str(), &c.crash);
    let fspath = nodeid.split("::").next().unwrap_or(nodeid).to_string();
    let body = body(c);
    let (letter, word, markup) = teststatus(&c.outcome);
    let short = short.map(|(width, color)| {
        let why = format!("{} ({})", c.longrepr, w.fault.as_deref().unwrap_or(&w.exit));
        let markup: &[&str] = markup.as_slice();
        crate::report::text::short_line(&word, markup, nodeid, &why, width, color)
    });
    let m: Map<String, serde_json::Value> = markup
        .iter()
        .map(|k| (k.to_string(), json!(true)))
        .collect();
    Report {
        index: None,
        nodeid: Some(nodeid.to_string()),
        when: "???".into(),
        outcome: c.outcome.to_string(),
        category: c.outcome.clone(),
        letter: letter.into(),
        word,
        markup: Some(m),
        head: Some(fspath.clone()),
        body: Some(body.clone()),
        short,
        text: Some(body),
        counts: true,
        location: Some((fspath.clone(), None, fspath)),
        ..Report::default()
    }
}

/// The letter, word and colour of a crashed test's report with `outcome` (a crash handler
/// may have changed it): pytest-rerunfailures' for "rerun", else pytest's own
/// `pytest_report_teststatus` (the seed's handler's "crashed" is `F CRASHED`, uncoloured).
fn teststatus(outcome: &str) -> (&'static str, String, Option<&'static str>) {
    match outcome {
        "rerun" => ("R", "RERUN".into(), Some("yellow")),
        "passed" => (".", "PASSED".into(), Some("green")),
        "skipped" => ("s", "SKIPPED".into(), Some("yellow")),
        "failed" => ("F", "FAILED".into(), Some("red")),
        other => ("F", other.to_uppercase(), None),
    }
}

/// The crashed test's longrepr: the worker, the crash, its cause and its stderr.
fn body(c: &TestCrash) -> String {
    let w = &c.crash;
    let mut body = String::new();
    if let Some(line) = &c.infoline {
        body.push_str(line);
        body.push('\n');
    }
    body.push_str(&c.longrepr);
    body.push('\n');
    match w.hang_timeout {
        Some(secs) => body.push_str(&format!(
            "test exceeded --hang-timeout of {secs}s; worker killed ({}); Python stacks:\n",
            w.exit
        )),
        None => {
            body.push_str(&format!("worker exited with {}\n", w.exit));
            if let Some(fault) = &w.fault {
                body.push_str(&format!("{fault} (the worker is failed like a crash)\n"));
            }
        }
    }
    if !w.stderr_tail.is_empty() {
        body.push_str("last lines of the worker's stderr:\n");
        for l in &w.stderr_tail {
            body.push_str(l);
            body.push('\n');
        }
    }
    body
}

/// The stderr lines shown with a crash no test is blamed for.
pub fn session_tail(w: &WorkerCrash) -> &[String] {
    let keep = match w.hang_timeout {
        Some(_) => w.stderr_tail.len(),
        None => SESSION_CRASH_TAIL,
    };
    &w.stderr_tail[w.stderr_tail.len().saturating_sub(keep)..]
}

/// `worker gw0 crashed while no test was running (SIGSEGV)`: shown and kept for the summary.
pub fn session_line(w: &WorkerCrash, moment: &CrashMoment) -> String {
    let when = match moment {
        CrashMoment::BeforeSession => "before its pytest session started".to_string(),
        CrashMoment::BetweenTests => "while no test was running".to_string(),
        CrashMoment::SessionEnd => "after its last test, while ending its session".to_string(),
        CrashMoment::AfterSession => "after its session ended".to_string(),
        CrashMoment::Teardown { nodeid } => {
            let hang = match w.hang_timeout {
                Some(secs) => format!(", exceeding --hang-timeout of {secs}s"),
                None => String::new(),
            };
            format!("in the teardown of '{nodeid}', after its outcome{hang}")
        }
    };
    let cause = w.fault.as_deref().unwrap_or(&w.exit);
    format!("worker {} crashed {when} ({cause})", w.worker)
}

/// After the summary, on stderr as pytest: the traceback that stands for the controller's
/// own `pytest_unconfigure`, or one warning line for a worker's.
pub fn unconfigure_text(worker: Option<&str>, traceback: &str) -> String {
    match worker {
        None => traceback.to_string(),
        Some(id) => {
            let last = traceback.trim_end().lines().last().unwrap_or_default();
            format!("xdist: warning: pytest_unconfigure raised in {id} after its tests: {last}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(tail: &[String], hang: Option<f64>) -> WorkerCrash {
        WorkerCrash {
            worker: "gw1".into(),
            exit: "SIGSEGV".into(),
            fault: None,
            hang_timeout: hang,
            stderr_tail: tail.to_vec(),
        }
    }

    #[test]
    fn a_crashed_test_fails_with_the_cause_and_the_stderr() {
        let tail = vec!["Fatal Python error".to_string()];
        let longrepr = headline("gw1", "t.py::test_a");
        let c = TestCrash {
            crash: crash(&tail, None),
            nodeid: "t.py::test_a".into(),
            longrepr,
            outcome: "failed".into(),
            infoline: Some("[gw1] linux -- Python 3.12.1 /usr/bin/python3".into()),
        };
        let r = test_report(&c, Some((80, false)));
        assert_eq!((r.word.as_str(), r.letter.as_str()), ("FAILED", "F"));
        let body = r.body.unwrap_or_default();
        assert!(body.starts_with("[gw1] linux"), "{body}");
        assert!(body.contains(
            "worker 'gw1' crashed while running 't.py::test_a'\nworker exited with SIGSEGV\n"
        ));
        assert!(body.ends_with("stderr:\nFatal Python error\n"), "{body}");
        let short = r.short.unwrap_or_default();
        assert!(
            short.starts_with("FAILED t.py::test_a - worker 'gw1'"),
            "{short}"
        );
        assert!(test_report(&c, None).short.is_none());
        let rerun = TestCrash {
            outcome: "rerun".into(),
            ..c
        };
        assert_eq!(test_report(&rerun, None).word, "RERUN");
    }

    #[test]
    fn session_crashes_say_when() {
        let tail: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
        let plain = crash(&tail, None);
        assert_eq!(session_tail(&plain).len(), SESSION_CRASH_TAIL);
        assert_eq!(
            session_line(&plain, &CrashMoment::SessionEnd),
            "worker gw1 crashed after its last test, while ending its session (SIGSEGV)"
        );
        let hung = crash(&tail, Some(2.0));
        assert_eq!(
            session_tail(&hung).len(),
            30,
            "a hung worker's stacks, all of them"
        );
        let teardown = CrashMoment::Teardown {
            nodeid: "t.py::b".into(),
        };
        assert_eq!(
            session_line(&hung, &teardown),
            "worker gw1 crashed in the teardown of 't.py::b', after its outcome, exceeding --hang-timeout of 2s (SIGSEGV)"
        );
    }
}
