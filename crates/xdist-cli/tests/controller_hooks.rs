//! The seed's hooks from conftests, and plugins that act on each report as it reaches
//! pytest-xdist's controller, through the controller session (`controller_session.rs`):
//! - `examples/seed_worker_count`: `-n auto` sized by the conftest's
//!   `pytest_xdist_auto_num_workers` (as pytest-xdist sizes it);
//! - `examples/seed_lifecycle`: the node lifecycle lines, a crashed worker's too;
//! - `examples/seed_collection`: each worker's collection, as pytest-xdist prints it;
//! - pytest-github-actions-annotate-failures (`GITHUB_ACTIONS=true`): pytest-xdist's
//!   `::error`/`::warning` lines; pytest-instafail: each failure as it happens;
//! - pytest-sugar (its own venv, `.venv-sugar`): our terminal, pytest's counts;
//! - a run whose plugins do not act starts no controller session.
//!
//! Each runs in fork and spawn mode. Interpreters: `.venv` (pytest, psutil), `.venv-xdist`
//! (pytest-xdist and the live-report plugins, to compare), `.venv-plugins`, `.venv-sugar`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use regex::Regex;

fn xdist(python: &Path, dir: &Path, mode: &str, args: &[&str]) -> Command {
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_xdist"), dir);
    cmd.env_remove("GITHUB_ACTIONS")
        .arg("--python")
        .arg(python)
        .args(start_args(mode))
        .args(["-p", "no:cacheprovider"])
        .args(args);
    cmd
}

fn run_xdist(python: &Path, dir: &Path, mode: &str, args: &[&str]) -> RunOutput {
    run(&mut xdist(python, dir, mode, args))
}

fn pytest_xdist(dir: &Path, args: &[&str]) -> Option<Command> {
    let python = test_python_with_xdist()?;
    let mut cmd = clean_command(&python.to_string_lossy(), dir);
    cmd.env_remove("GITHUB_ACTIONS")
        .args(["-m", "pytest", "-p", "no:cacheprovider"])
        .args(args);
    Some(cmd)
}

fn run(cmd: &mut Command) -> RunOutput {
    run_with_timeout(cmd, Duration::from_secs(180))
}

fn venv_python(rel: &str) -> PathBuf {
    let py = repo_root().join(rel);
    assert!(py.exists(), "{} is missing: run dev/venv.sh", py.display());
    py
}

fn created_workers(out: &RunOutput) -> String {
    (out.stdout.lines())
        .find(|l| l.starts_with("created: "))
        .unwrap_or_else(|| panic!("no `created:` line\n{}", out.describe(3000)))
        .to_string()
}

#[test]
fn auto_workers_come_from_the_conftest_hook() {
    let dir = examples_dir().join("seed_worker_count");
    let python = test_python();
    let physical = run(Command::new(&python).args([
        "-c",
        "import psutil; print(psutil.cpu_count(logical=False))",
    ]));
    let cores: usize = physical.stdout.trim().parse().expect("psutil's core count");
    // The suite has 12 tests: more workers than that never start.
    let want = format!("created: {0}/{0} workers", (cores * 2).min(12));
    if let Some(mut cmd) = pytest_xdist(&dir, &["-n", "auto", "--io-bound"]) {
        assert_eq!(created_workers(&run(&mut cmd)), want, "pytest-xdist");
    }
    for mode in START_MODES {
        let out = run_xdist(&python, &dir, mode, &["-n", "auto", "--io-bound"]);
        assert_eq!(out.code, Some(0), "{}", out.describe(3000));
        assert_eq!(created_workers(&out), want, "{}", out.describe(3000));
        assert!(out.stdout.contains("12 passed"), "{}", out.describe(3000));
        // None from the hook: the default count.
        let out = run_xdist(&python, &dir, mode, &["-n", "auto"]);
        let default = run_xdist(&python, &dir, mode, &["-n", "auto", "--noconftest"]);
        assert_eq!(created_workers(&out), created_workers(&default));
    }
}

#[test]
fn node_lifecycle_hooks_print_their_lines() {
    let dir = examples_dir().join("seed_lifecycle");
    for mode in START_MODES {
        let out = run_xdist(&test_python(), &dir, mode, &["-n", "2"]);
        assert_eq!(out.code, Some(1), "{}", out.describe(3000));
        let text = &out.stdout;
        for line in [
            "Setting up 2 worker nodes...\nWorker 0: popen\nWorker 1: popen\n",
            "Configured worker gw0\n",
            "Configured worker gw1\n",
        ] {
            assert!(text.contains(line), "{line:?}\n{}", out.describe(4000));
        }
        for gw in ["gw0", "gw1"] {
            for want in [
                format!("Worker {gw} ready after "),
                format!("Worker {gw} finished cleanly"),
                format!("Worker {gw} runtime: "),
            ] {
                assert_eq!(
                    text.matches(&want).count(),
                    1,
                    "{want}\n{}",
                    out.describe(4000)
                );
            }
        }
        // Set up first, ready before the tests' summary.
        let setup = text.find("Setting up").unwrap();
        let ready = text.find("Worker gw0 ready").unwrap();
        assert!(setup < ready && ready < text.find("1 failed, 4 passed").unwrap());
    }
}

#[test]
fn a_crashed_worker_goes_down_with_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let conftest = examples_dir().join("seed_lifecycle/conftest.py");
    std::fs::copy(conftest, tmp.path().join("conftest.py")).unwrap();
    std::fs::write(tmp.path().join("pytest.ini"), "[pytest]\n").unwrap();
    let test = "import os\n\ndef test_ok():\n    pass\n\ndef test_dies():\n    os._exit(1)\n";
    std::fs::write(tmp.path().join("test_crash.py"), test).unwrap();
    let crashed = Regex::new(r"Worker gw[01] crashed: Not properly terminated").unwrap();
    for mode in START_MODES {
        let out = run_xdist(&test_python(), tmp.path(), mode, &["-n", "2"]);
        assert!(crashed.is_match(&out.stdout), "{}", out.describe(4000));
    }
}

/// The collection lines of each worker, in the order the run printed them.
fn collection_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = (text.lines())
        .filter(|l| l.starts_with("Worker gw") || l.starts_with("  test_"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn each_workers_collection_is_processed_as_pytest_xdist_does() {
    let dir = examples_dir().join("seed_collection");
    let mut want: Vec<String> = [
        "Worker gw0 collected 5 tests:",
        "Worker gw1 collected 5 tests:",
    ]
    .into_iter()
    .chain(["  test_alpha.py: 3 tests", "  test_beta.py: 2 tests"].repeat(2))
    .map(str::to_string)
    .collect();
    want.sort();
    if let Some(mut cmd) = pytest_xdist(&dir, &["-n", "2"]) {
        assert_eq!(
            collection_lines(&run(&mut cmd).stdout),
            want,
            "pytest-xdist"
        );
    }
    for mode in START_MODES {
        let out = run_xdist(&test_python(), &dir, mode, &["-n", "2"]);
        assert_eq!(out.code, Some(0), "{}", out.describe(3000));
        assert_eq!(
            collection_lines(&out.stdout),
            want,
            "{}",
            out.describe(3000)
        );
    }
}

const LIVE_SUITE: &str = r#"import time
import warnings

import pytest


def test_fails_first():
    assert 1 == 2


@pytest.mark.parametrize("n", range(3))
def test_param(n):
    time.sleep(0.3)
    assert n != 1


def test_warns():
    warnings.warn("careful")
"#;

fn live_suite() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pytest.ini"), "[pytest]\n").unwrap();
    std::fs::write(tmp.path().join("test_live.py"), LIVE_SUITE).unwrap();
    tmp
}

fn annotations(stderr: &str) -> Vec<String> {
    let mut lines: Vec<String> = (stderr.lines())
        .filter(|l| l.starts_with("::"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn github_annotations_equal_pytest_xdists() {
    let suite = live_suite();
    let python = test_python_with_xdist().expect(".venv-xdist (dev/venv.sh)");
    let mut cmd = pytest_xdist(suite.path(), &["-n", "2"]).unwrap();
    let want = annotations(&run(cmd.env("GITHUB_ACTIONS", "true")).stderr);
    assert_eq!(want.len(), 3, "{want:?}");
    for mode in START_MODES {
        let mut cmd = xdist(&python, suite.path(), mode, &["-n", "2"]);
        let out = run(cmd.env("GITHUB_ACTIONS", "true"));
        assert_eq!(annotations(&out.stderr), want, "{}", out.describe(4000));
    }
}

#[test]
fn instafail_prints_each_failure_as_it_happens() {
    let suite = live_suite();
    let python = test_python_with_xdist().expect(".venv-xdist (dev/venv.sh)");
    for mode in START_MODES {
        let out = run_xdist(&python, suite.path(), mode, &["-n", "2", "--instafail"]);
        let text = &out.stdout;
        let end_of_tests = text.find("[100%]").expect("the progress line");
        for test in ["_ test_fails_first _", "_ test_param[1] _"] {
            let at = text
                .find(test)
                .unwrap_or_else(|| panic!("{}", out.describe(4000)));
            assert!(
                at < end_of_tests,
                "{test} after the tests\n{}",
                out.describe(4000)
            );
        }
        assert!(
            text.contains("2 failed, 3 passed"),
            "{}",
            out.describe(4000)
        );
        // Shown once: as with pytest-instafail, no FAILURES section at the end.
        assert!(!text.contains(" FAILURES "), "{}", out.describe(4000));
    }
}

/// A plugin module that logs every pytest process that configures: a worker's id, or
/// `none` for a controller session.
const RECORDER: &str = r#"import os


def pytest_configure(config):
    with open(os.environ["PROCESS_LOG"], "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_" + "WORKER", "none") + "\n")
"#;

#[test]
fn no_controller_session_unless_a_plugin_acts() {
    let suite = live_suite();
    std::fs::write(suite.path().join("process_recorder.py"), RECORDER).unwrap();
    let python = venv_python(".venv-plugins/bin/python");
    let log = suite.path().join("processes.log");
    let sessions = |args: &[&str], github: bool, mode: &str| {
        let _ = std::fs::remove_file(&log);
        let mut cmd = xdist(&python, suite.path(), mode, &["-n", "2"]);
        // syrupy's `pytest_testnodedown` needs a session of its own.
        cmd.args([
            "-p",
            "process_recorder",
            "-p",
            "no:rerunfailures",
            "-p",
            "no:syrupy",
        ])
        .args(args)
        .env("PYTHONPATH", suite.path())
        .env("PROCESS_LOG", &log);
        if github {
            cmd.env("GITHUB_ACTIONS", "true");
        }
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(1), "{}", out.describe(3000));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| *l == "none").count()
    };
    for mode in START_MODES {
        // Installed, not turned on: pytest-instafail, GitHub annotations, pytest-benchmark.
        assert_eq!(sessions(&[], false, mode), 0);
        assert_eq!(sessions(&["--instafail"], false, mode), 1);
        assert_eq!(sessions(&[], true, mode), 1);
    }
}

#[test]
fn sugar_leaves_the_terminal_and_the_counts_to_xdist() {
    let suite = live_suite();
    let python = venv_python(".venv-sugar/bin/python");
    let mut serial = clean_command(&python.to_string_lossy(), suite.path());
    serial.args(["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:sugar"]);
    let serial = parse_summary(&run(&mut serial).stdout).expect("serial summary");
    let progress = Regex::new(r"(?m)^[.F]{5} +\[100%\]$").unwrap();
    for mode in START_MODES {
        let out = run_xdist(&python, suite.path(), mode, &["-n", "2", "--force-sugar"]);
        let summary = parse_summary(&out.stdout).expect("summary");
        assert_eq!(summary.counts, serial.counts, "{}", out.describe(3000));
        // pytest's progress letters and sections, not sugar's.
        assert!(progress.is_match(&out.stdout), "{}", out.describe(3000));
        assert!(!out.stdout.contains("Results ("), "{}", out.describe(3000));
    }
}
