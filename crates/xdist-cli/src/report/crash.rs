//! The wording of worker failures: a worker that died running a test becomes that test's
//! report, one that died between tests a line of its own, a `pytest_unconfigure` that raised
//! a traceback or a warning. The run loop sends the facts
//! ([`TestCrash`], [`WorkerCrash`]); the reporters word them here.

use crate::error::CliError;
use crate::report::events::{CrashMoment, Fault, TestCrash, WorkerCrash};
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
        let why = format!("{} ({})", c.longrepr, cause(w));
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
                let fault = fault_text(fault);
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
    format!("worker {} crashed {when} ({})", w.worker, cause(w))
}

/// What broke, else how its process ended.
fn cause(w: &WorkerCrash) -> String {
    w.fault.as_ref().map_or_else(|| w.exit.clone(), fault_text)
}

fn fault_text(fault: &Fault) -> String {
    match fault {
        Fault::Protocol(e) => format!("protocol error: {e}"),
        Fault::ChannelLost => {
            "channel lost: the worker's event channel was closed or replaced while it ran".into()
        }
    }
}

/// A worker's `fatal` event (its session could not start) as the error the run ends with;
/// `python` is the interpreter it ran.
pub fn worker_fatal(kind: &str, message: &str, python: &std::path::Path) -> CliError {
    let py = python.display();
    match kind {
        "no_pytest" => CliError::Usage(format!(
            "failed to import pytest with {py} ({message}); install it with `{py} -m pip install pytest` or pass --python PATH of an interpreter that has pytest"
        )),
        "old_pytest" => CliError::Usage(format!(
            "{message} (xdist needs pytest >= 7); upgrade it with `{py} -m pip install -U pytest`"
        )),
        "usage" => CliError::Usage(usage_text(message)),
        _ => CliError::Internal(format!("worker failed to start: {}", message.trim_end())),
    }
}

/// pytest's usage error without its `usage: xdist [options] ...` line, which says nothing
/// about the mistake: what is left starts with what is wrong (`unrecognized arguments: ..`).
fn usage_text(message: &str) -> String {
    let text = message.trim().trim_start_matches("ERROR: ");
    match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("usage: ") => {
            let rest = rest.trim_start();
            rest.strip_prefix("xdist: error: ")
                .unwrap_or(rest)
                .to_string()
        }
        _ => text.to_string(),
    }
}

/// A worker that speaks another protocol than ours.
pub fn protocol_mismatch(worker: &str, protocol: u32) -> CliError {
    let ours = xdist_core::protocol::PROTOCOL_VERSION;
    CliError::Internal(format!(
        "worker {worker} speaks protocol {protocol}, this xdist speaks {ours}"
    ))
}

/// What the terminal shows where the summary hooks' text would be, when they could not
/// run: pytest itself dies of it (a traceback, no summary line); xdist keeps the summary
/// line and shows the traceback here.
pub fn summary_step_failed(error: &str) -> String {
    format!("failed to run plugins' end-of-run hooks:\n{error}")
        .trim_end()
        .lines()
        .map(|l| format!("INTERNALERROR> {l}\n"))
        .collect()
}

/// Why the run fails when its only worker died before its pytest session started: its
/// stderr says why.
pub fn never_started(w: &WorkerCrash) -> String {
    let tail = match w.stderr_tail.is_empty() {
        true => String::new(),
        false => format!(": {}", w.stderr_tail.join("\n")),
    };
    format!(
        "worker {} exited before its pytest session started ({}){tail}",
        w.worker, w.exit
    )
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

    #[test]
    fn a_usage_error_starts_with_what_is_wrong() {
        let pytest = "ERROR: usage: xdist [options] [file_or_dir] [file_or_dir] [...]\n\
                      xdist: error: unrecognized arguments: --bogus\n  inifile: /s/pytest.ini\n  rootdir: /s\n";
        assert_eq!(
            usage_text(pytest),
            "unrecognized arguments: --bogus\n  inifile: /s/pytest.ini\n  rootdir: /s"
        );
        // Other usage errors (no usage line) are kept whole.
        assert_eq!(
            usage_text("ERROR: file or directory not found: x.py\n"),
            "file or directory not found: x.py"
        );
    }
}
