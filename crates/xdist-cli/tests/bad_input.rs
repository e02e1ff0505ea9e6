//! Bad input: every case below must end with exactly one line on stderr, starting
//! `xdist: error: ` and saying what is wrong, exit code 4 (pytest's usage error), and no panic,
//! Rust backtrace, Python traceback or INTERNALERROR anywhere in the output.
//!
//! Interpreters: `XDIST_TEST_PYTHON` (default `<repo>/.venv/bin/python`, see `dev/venv.sh`).
//! The interpreter without pytest is a bare venv made in a temporary directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("xdist-bad-input-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory holding one passing test, where each case runs.
fn suite(name: &str) -> Scratch {
    let s = Scratch::new(name);
    std::fs::write(s.0.join("test_ok.py"), "def test_ok():\n    pass\n").unwrap();
    s
}

fn xdist(cwd: &Path, args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
    cmd.current_dir(cwd)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("VIRTUAL_ENV")
        .env_remove("XDIST_PYTHON")
        .env_remove("RUST_BACKTRACE");
    run_with_timeout(&mut cmd, Duration::from_secs(60))
}

fn py() -> String {
    test_python().to_string_lossy().into_owned()
}

/// Checks the one-line, exit-4 contract; `fragments` must all appear in that line.
fn assert_one_error_line(out: &RunOutput, fragments: &[&str]) -> String {
    assert_one_error_line_exiting(out, fragments, 4)
}

/// [`assert_one_error_line`] for an error pytest exits `code` for.
fn assert_one_error_line_exiting(out: &RunOutput, fragments: &[&str], code: i32) -> String {
    let ctx = out.describe(6000);
    assert!(!out.timed_out, "timed out\n{ctx}");
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "Traceback",
        "INTERNALERROR",
    ] {
        assert!(
            !out.stderr.contains(bad) && !out.stdout.contains(bad),
            "output contains {bad:?}\n{ctx}"
        );
    }
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "want exactly one line on stderr\n{ctx}");
    let line = lines[0];
    assert!(
        line.starts_with("xdist: error: ") && line.len() > "xdist: error: ".len() + 5,
        "stderr line must start with `xdist: error: `\n{ctx}"
    );
    for f in fragments {
        assert!(line.contains(f), "stderr line lacks {f:?}\n{ctx}");
    }
    assert_eq!(out.code, Some(code), "want exit code {code}\n{ctx}");
    line.to_string()
}

#[test]
fn n_not_a_number() {
    let s = suite("n-foo");
    let out = xdist(&s.0, &["-n", "foo"]);
    assert_one_error_line(&out, &["'foo'", "-n/--numprocesses"]);
}

#[test]
fn n_followed_by_an_option() {
    // argparse (pytest-xdist) says `-n` lacks its argument; any one clear line will do.
    let s = suite("n-x");
    let out = xdist(&s.0, &["-n", "-x"]);
    let line = assert_one_error_line(&out, &[]);
    assert!(
        line.contains("-x") || line.contains("numprocesses"),
        "{}",
        out.describe(4000)
    );
}

#[test]
fn dist_bogus() {
    let s = suite("dist");
    let out = xdist(&s.0, &["-n", "2", "--python", &py(), "--dist", "bogus"]);
    assert_one_error_line(&out, &["'bogus'", "--dist", "loadgroup"]);
}

#[test]
fn maxprocesses_not_a_number() {
    let s = suite("maxprocesses");
    let out = xdist(
        &s.0,
        &["-n", "2", "--python", &py(), "--maxprocesses", "abc"],
    );
    assert_one_error_line(&out, &["'abc'", "--maxprocesses"]);
}

#[test]
fn python_does_not_exist() {
    let s = suite("python-missing");
    let out = xdist(&s.0, &["-n", "2", "--python", "/nonexistent/python"]);
    assert_one_error_line(&out, &["--python /nonexistent/python", "no such file"]);
}

#[test]
fn python_is_a_directory() {
    let s = suite("python-dir");
    let dir = s.0.to_string_lossy().into_owned();
    let out = xdist(&s.0, &["-n", "2", "--python", &dir]);
    assert_one_error_line(&out, &["is a directory"]);
}

/// A venv without pytest (`python -m venv --without-pip`), made once.
fn bare_python() -> &'static Path {
    static BARE: OnceLock<PathBuf> = OnceLock::new();
    BARE.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("xdist-bad-input-{}-bare-venv", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = run_with_timeout(
            Command::new(test_python())
                .args(["-m", "venv", "--without-pip"])
                .arg(&dir),
            Duration::from_secs(120),
        );
        assert_eq!(out.code, Some(0), "{}", out.describe(4000));
        let py = dir.join("bin/python");
        let probe = run_with_timeout(
            Command::new(&py).args(["-c", "import pytest"]),
            Duration::from_secs(60),
        );
        assert_ne!(probe.code, Some(0), "the bare venv can import pytest");
        py
    })
}

#[test]
fn python_without_pytest() {
    let s = suite("no-pytest");
    let bare = bare_python().to_string_lossy().into_owned();
    let out = xdist(&s.0, &["-n", "2", "--python", &bare]);
    let line = assert_one_error_line(
        &out,
        &["failed to import pytest", &bare, "pip install pytest"],
    );
    // Reported once, not once per worker.
    assert_eq!(line.matches("failed to import pytest").count(), 1);
    let _ = std::fs::remove_dir_all(Path::new(&bare).parent().unwrap().parent().unwrap());
}

#[test]
fn unknown_test_path() {
    let s = suite("unknown-path");
    let out = xdist(&s.0, &["-n", "2", "--python", &py(), "does_not_exist.py"]);
    let line = assert_one_error_line(&out, &[]);
    assert_eq!(
        line,
        "xdist: error: file or directory not found: does_not_exist.py",
        "{}",
        out.describe(4000)
    );
    assert!(
        !out.stdout.contains("file or directory not found"),
        "{}",
        out.describe(4000)
    );
}

#[test]
fn unknown_test_path_with_capture_off() {
    // With `-s` the controller relays worker output: the message must still appear once.
    let s = suite("unknown-path-s");
    let out = xdist(
        &s.0,
        &["-n", "2", "--python", &py(), "-s", "does_not_exist.py"],
    );
    assert_one_error_line(&out, &["file or directory not found: does_not_exist.py"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(
        all.matches("file or directory not found").count(),
        1,
        "{}",
        out.describe(4000)
    );
}

#[test]
fn pdb_with_workers() {
    let s = suite("pdb");
    let out = xdist(&s.0, &["-n", "2", "--python", &py(), "--pdb"]);
    assert_one_error_line(&out, &["--pdb", "-n0"]);
}

#[test]
fn unknown_pytest_option() {
    // pytest's own usage error spans several lines (`usage: ...`, `error: ...`, `inifile`,
    // `rootdir`): it comes once, its first line says what is wrong, exit 4, in both modes.
    for start in ["fork", "spawn"] {
        let s = suite("bogus-option");
        let args = [
            "-n",
            "2",
            "--python",
            &py(),
            "--start",
            start,
            "--no-such-option",
        ];
        let out = xdist(&s.0, &args);
        let ctx = out.describe(4000);
        assert_eq!(out.code, Some(4), "{ctx}");
        let first = "xdist: error: unrecognized arguments: --no-such-option\n";
        assert!(out.stderr.starts_with(first), "{ctx}");
        assert!(out.stderr.contains("  rootdir: "), "{ctx}");
        assert!(!out.stderr.contains("-c"), "the worker's argv[0]: {ctx}");
        assert_eq!(out.stderr.matches("xdist: error: ").count(), 1, "{ctx}");
        assert_eq!(out.stderr.matches("--no-such-option").count(), 1, "{ctx}");
        assert!(
            !out.stderr.contains("Traceback") && !out.stderr.contains("panicked"),
            "{ctx}"
        );
    }
}

/// `xdist --help | head -1`: output to a closed pipe is dropped, never a panic.
#[test]
fn help_into_a_closed_pipe_does_not_panic() {
    for args in [
        &["--help"][..],
        &["--generate", "man"][..],
        &["plugins", "--paths"][..],
    ] {
        // A pipe whose reading end is already closed: every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xdist"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run xdist");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
}

/// Every CI provider's job variables `--shard auto` reads, removed (the host may be a CI job).
const SHARD_VARS: &[&str] = &[
    "CIRCLE_NODE_INDEX",
    "CIRCLE_NODE_TOTAL",
    "CI_NODE_INDEX",
    "CI_NODE_TOTAL",
    "BUILDKITE_PARALLEL_JOB",
    "BUILDKITE_PARALLEL_JOB_COUNT",
    "TEST_SHARD_INDEX",
    "TEST_TOTAL_SHARDS",
];

fn xdist_shard_env(cwd: &Path, vars: &[(&str, &str)], args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
    cmd.current_dir(cwd).args(args).env_remove("PYTEST_ADDOPTS");
    for v in SHARD_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(vars.iter().copied());
    run_with_timeout(&mut cmd, Duration::from_secs(60))
}

#[test]
fn shard_auto_without_a_provider() {
    let s = suite("shard-auto-none");
    let out = xdist_shard_env(&s.0, &[], &["--python", &py(), "--shard", "auto"]);
    assert_one_error_line(
        &out,
        &[
            "--shard auto found no CI provider",
            "CIRCLE_NODE_INDEX",
            "--shard K/N",
        ],
    );
}

#[test]
fn shard_auto_with_bad_provider_values() {
    let s = suite("shard-auto-bad");
    for (vars, needle) in [
        (
            &[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "4")][..],
            "counts from 1",
        ),
        (
            &[("CIRCLE_NODE_INDEX", "4"), ("CIRCLE_NODE_TOTAL", "4")][..],
            "out of range",
        ),
        (
            &[
                ("BUILDKITE_PARALLEL_JOB", "x"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "2"),
            ][..],
            "not a whole number",
        ),
        (&[("TEST_TOTAL_SHARDS", "3")][..], "TEST_SHARD_INDEX is not"),
    ] {
        let out = xdist_shard_env(&s.0, vars, &["--python", &py(), "--shard", "auto"]);
        assert_one_error_line(&out, &[needle]);
    }
}

#[test]
fn exec_spec_with_rsyncdir() {
    let s = suite("exec-rsyncdir");
    let out = xdist(
        &s.0,
        &["--tx", &format!("exec={}", py()), "--rsyncdir", "."],
    );
    assert_one_error_line(&out, &["--rsyncdir does not apply to exec= workers"]);
}

#[test]
fn exec_spec_with_an_open_quote() {
    let s = suite("exec-quote");
    let out = xdist(&s.0, &["--tx", "exec=docker exec -i 'box python3"]);
    assert_one_error_line(&out, &["bad exec command", "No closing quotation"]);
}

#[test]
fn merge_commands_with_bad_inputs() {
    let s = suite("merge-bad");
    std::fs::write(s.0.join("not.xml"), "<html></html>").unwrap();
    std::fs::write(s.0.join("garbage"), "{not json").unwrap();
    let out = xdist(&s.0, &["merge-junit", "out.xml"]);
    assert_one_error_line(&out, &["required", "IN.xml", "merge-junit --help"]);
    let out = xdist(&s.0, &["merge-junit", "out.xml", "missing.xml"]);
    assert_one_error_line(&out, &["cannot read missing.xml"]);
    let out = xdist(&s.0, &["merge-junit", "out.xml", "not.xml"]);
    assert_one_error_line(&out, &["not.xml", "no <testsuite>"]);
    let out = xdist(&s.0, &["merge-durations", "out", "garbage"]);
    assert_one_error_line(&out, &["garbage", "not a duration history"]);
    assert!(!s.0.join("out.xml").exists() && !s.0.join("out").exists());
}

#[test]
fn start_bogus() {
    let s = suite("start");
    let out = xdist(&s.0, &["-n", "2", "--python", &py(), "--start", "vfork"]);
    assert_one_error_line(&out, &["'vfork'", "--start", "fork, spawn"]);
}

#[test]
fn ini_xdist_start_bogus() {
    let s = suite("ini-start");
    std::fs::write(s.0.join("pytest.ini"), "[pytest]\nxdist_start = clone\n").unwrap();
    let out = xdist(&s.0, &["-n", "2", "--python", &py()]);
    assert_one_error_line(&out, &["'clone'", "ini xdist_start", "fork, spawn"]);
}

/// A report file that cannot be written fails the run as plain pytest's (exit 1; pytest adds
/// a traceback, xdist one line), after the tests ran and their summary was shown.
#[test]
fn unwritable_report_files_fail_the_run() {
    let s = suite("unwritable-report");
    // A regular file where a directory must be: no one can create a file below it.
    std::fs::write(s.0.join("blocker"), "").unwrap();
    let serial = run_with_timeout(
        clean_command(&py(), &s.0).args(["-m", "pytest", "-q", "--junitxml=blocker/out.xml"]),
        Duration::from_secs(60),
    );
    assert_eq!(serial.code, Some(1), "{}", serial.describe(3000));
    let cases = [
        ("--junitxml=blocker/out.xml", "junit xml"),
        ("--report-log=blocker/log.json", "report log"),
    ];
    for (arg, what) in cases {
        let out = xdist(&s.0, &["-n", "2", "--python", &py(), arg]);
        let needle = format!("could not write {what}");
        assert_one_error_line_exiting(&out, &[&needle, "blocker"], 1);
        assert!(out.stdout.contains("1 passed"), "{}", out.describe(3000));
    }
}
