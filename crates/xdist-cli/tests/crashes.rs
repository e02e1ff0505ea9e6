//! examples/crashes: two tests kill their worker (`os._exit(1)` and a
//! SIGSEGV). Serial pytest dies with them, so there is no serial reference:
//! the distributed run alone must report each crashing test FAILED (with a
//! `crashed while running` line naming it), every other test PASSED exactly
//! once, `2 failed, 6 passed`, and exit code 1.
//!
//! Same environment variables as compare_examples.rs (`XDIST_TEST_PYTHON`,
//! `XDIST_TEST_PYTHON_WITH_XDIST`, `XDIST_TEST_DISTRIBUTED_CMD`,
//! `XDIST_TEST_TIMEOUT`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const CRASHING: &[&str] = &[
    "test_crashes.py::test_exit_crash",
    "test_crashes.py::test_segfault_crash",
];

const PASSING: &[&str] = &[
    "test_crashes.py::test_ok_1",
    "test_crashes.py::test_ok_2",
    "test_crashes.py::test_ok_3",
    "test_crashes.py::test_ok_4",
    "test_ok.py::test_ok_a",
    "test_ok.py::test_ok_b",
];

fn timeout() -> Duration {
    let secs = std::env::var("XDIST_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

fn check_crashes(python: &Path) -> Vec<String> {
    let suite_dir = examples_dir().join("crashes");
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), python);
    let mut cmd = Command::new(&argv[0]);
    cmd.current_dir(&suite_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("VIRTUAL_ENV")
        .args(&argv[1..])
        .args(["-v", "-p", "no:cacheprovider"])
        .arg(&suite_dir);
    let out = run_with_timeout(&mut cmd, timeout());
    let lines = parse_dist_v(&out.stdout);
    let mut problems = Vec::new();

    let outcomes_of = |nodeid: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| match_nodeid(&l.nodeid, nodeid))
            .map(|l| l.word.clone())
            .collect()
    };
    for t in CRASHING {
        let words = outcomes_of(t);
        if words != ["FAILED"] {
            problems.push(format!("{t}: outcomes {words:?}, want [\"FAILED\"]"));
        }
        let crash_line = out
            .stdout
            .lines()
            .any(|l| l.contains("crashed while running") && l.contains(t));
        if !crash_line {
            problems.push(format!("no `crashed while running` line naming {t}"));
        }
    }
    for t in PASSING {
        let words = outcomes_of(t);
        if words != ["PASSED"] {
            problems.push(format!("{t}: outcomes {words:?}, want [\"PASSED\"]"));
        }
    }
    let known = |raw: &str| CRASHING.iter().chain(PASSING).any(|t| match_nodeid(raw, t));
    for l in lines.iter().filter(|l| !known(&l.nodeid)) {
        problems.push(format!("unexpected outcome line: {} {}", l.word, l.nodeid));
    }
    match parse_summary(&out.stdout) {
        Some(s) if s.get("failed") == 2 && s.get("passed") == 6 && s.counts.len() == 2 => {}
        other => problems.push(format!(
            "summary {:?}, want `2 failed, 6 passed`",
            other.map(|s| s.line)
        )),
    }
    if out.code != Some(1) {
        problems.push(format!("exit code {:?}, want 1", out.code));
    }
    if !problems.is_empty() {
        problems = vec![format!(
            "[crashes with {}]\n- {}\n\n{}",
            python.display(),
            problems.join("\n- "),
            out.describe(12000)
        )];
    }
    problems
}

#[test]
fn crashing_tests_fail_others_pass() {
    let mut problems = check_crashes(&test_python());
    if let Some(py) = test_python_with_xdist() {
        problems.extend(check_crashes(&py));
    }
    if !problems.is_empty() {
        panic!("{}", problems.join("\n\n#####################\n\n"));
    }
}
