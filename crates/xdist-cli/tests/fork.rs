//! Fork mode (`--start fork`): workers forked from one process that collected. The
//! comparisons with serial pytest run in both modes elsewhere (compare_examples.rs,
//! faults.rs, python_plugins.rs); here: what only fork mode does.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn run(dir: &Path, args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
    cmd.current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("VIRTUAL_ENV")
        .arg("--python")
        .arg(test_python())
        .args(["-p", "no:cacheprovider"])
        .args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(120))
}

fn suite(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pytest.ini"), "[pytest]\n").unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const TWO_FILES: &[(&str, &str)] = &[
    (
        "test_a.py",
        "import os\nimport pytest\n\n@pytest.mark.parametrize('n', range(6))\ndef test_a(n, worker_id):\n    assert os.environ['PYTEST_XDIST_WORKER'] == worker_id\n",
    ),
    ("test_b.py", "def test_b():\n    pass\n"),
];

/// The module is imported once, in the fork server; every worker is its child and has
/// its own id, environment and basetemp.
#[test]
fn workers_are_children_of_one_collecting_process() {
    let files = [(
        "test_who.py",
        "import os\nimport pytest\nIMPORTED_BY = os.getpid()\n\n@pytest.mark.parametrize('n', range(8))\ndef test_who(n, worker_id, tmp_path, request):\n    assert os.getppid() == IMPORTED_BY\n    assert request.config.workerinput['workerid'] == worker_id\n    assert tmp_path.parent.name == 'popen-' + worker_id\n",
    )];
    let dir = suite(&files);
    let out = run(dir.path(), &["-n", "2", "--start", "fork"]);
    assert_eq!(out.code, Some(0), "{}", out.describe(6000));
    assert_eq!(parse_workers_items(&out.stdout), Some((2, 8)));
    assert!(
        !out.stdout.contains("spawning workers"),
        "{}",
        out.describe(4000)
    );
}

/// A thread alive in the fork server at fork time: the run spawns, says why, and passes.
#[test]
fn threads_at_fork_time_fall_back_to_spawning() {
    let mut files = TWO_FILES.to_vec();
    files.push((
        "conftest.py",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), name='poller', daemon=True).start()\n",
    ));
    let dir = suite(&files);
    let out = run(dir.path(), &["-n", "2", "--start", "fork"]);
    assert_eq!(out.code, Some(0), "{}", out.describe(6000));
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "xdist: spawning workers: threads alive at fork time: poller"),
        "{}",
        out.describe(6000)
    );
    assert_eq!(parse_workers_items(&out.stdout), Some((2, 7)));
}

/// Never more workers than the scheduler has units for.
#[test]
fn workers_are_sized_to_the_selection() {
    let dir = suite(TWO_FILES);
    let one = run(
        dir.path(),
        &["-n", "8", "--start", "fork", "test_b.py::test_b"],
    );
    assert_eq!(one.code, Some(0), "{}", one.describe(6000));
    assert!(
        one.stdout.lines().any(|l| l == "created: 1/1 worker"),
        "{}",
        one.describe(6000)
    );
    let files = run(
        dir.path(),
        &["-n", "8", "--start", "fork", "--dist", "loadfile"],
    );
    assert_eq!(
        parse_workers_items(&files.stdout),
        Some((2, 7)),
        "{}",
        files.describe(6000)
    );
    let each = run(
        dir.path(),
        &["-n", "3", "--start", "fork", "--dist", "each", "test_b.py"],
    );
    assert_eq!(
        parse_workers_items(&each.stdout),
        Some((3, 1)),
        "{}",
        each.describe(6000)
    );
}

/// ini `xdist_start = spawn`: each worker collects, and the header says so.
#[test]
fn ini_asks_for_spawning() {
    let dir = suite(TWO_FILES);
    std::fs::write(
        dir.path().join("pytest.ini"),
        "[pytest]\nxdist_start = spawn\n",
    )
    .unwrap();
    let out = run(dir.path(), &["-n", "2"]);
    assert_eq!(out.code, Some(0), "{}", out.describe(6000));
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "xdist: spawning workers: requested (--start spawn)"),
        "{}",
        out.describe(6000)
    );
}

/// A fork that fails (`EAGAIN` here, injected) spawns that worker instead: nothing is lost.
#[test]
fn a_failed_fork_spawns_the_worker_instead() {
    let dir = suite(TWO_FILES);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
    cmd.current_dir(dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("XDIST_FAIL_FORK", "2")
        .env_remove("PYTEST_ADDOPTS")
        .arg("--python")
        .arg(test_python())
        .args([
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--start",
            "fork",
            "-v",
            "-s",
        ]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe(6000));
    assert_eq!(
        parse_summary(&out.stdout).map(|s| s.line.contains("7 passed")),
        Some(true)
    );
    // (`-s`: no progress column in these lines)
    let on_gw1 = (out.stdout.lines())
        .filter(|l| l.starts_with("[gw1] PASSED "))
        .count();
    assert!(on_gw1 > 0, "{}", out.describe(6000));
    assert!(
        out.stdout
            .contains("[gw1] xdist: the fork server could not fork ("),
        "{}",
        out.describe(6000)
    );
}

/// Nothing the fork server leaves behind warns in a worker: suites run with
/// `filterwarnings = error` (pluggy's, markupsafe's, itsdangerous's) pass as serially.
#[test]
fn no_warning_from_the_fork_under_filterwarnings_error() {
    let dir = suite(TWO_FILES);
    std::fs::write(
        dir.path().join("pytest.ini"),
        "[pytest]\nfilterwarnings = error\n",
    )
    .unwrap();
    let out = run(dir.path(), &["-n", "2", "--start", "fork"]);
    assert_eq!(out.code, Some(0), "{}", out.describe(6000));
    assert_eq!(
        parse_summary(&out.stdout).map(|s| s.line.contains("7 passed")),
        Some(true),
        "{}",
        out.describe(6000)
    );
}

/// The collection travels once: a forked worker never writes it (its fork server sent it
/// to the controller once, for all), while a spawned worker writes its own. Measured by
/// the bytes each worker process wrote (`/proc/self/io`), before its first test.
#[test]
fn a_forked_worker_does_not_send_the_collection() {
    let long = "x".repeat(150);
    let many = format!(
        "import pytest\n\n@pytest.mark.parametrize('n', range(2000), ids=lambda i: f'{{i}}-{long}')\ndef test_many(n):\n    pass\n"
    );
    let probe = "import os\n\ndef test_probe(worker_id, tmp_path_factory):\n    io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n    out = tmp_path_factory.getbasetemp().parent.parent / ('wchar-' + worker_id)\n    out.write_text(io['wchar'])\n";
    let dir = suite(&[("test_a_probe.py", probe), ("test_b_many.py", &many)]);
    // The ids alone, as the collection carries them.
    let collection_bytes = 2000 * (long.len() + "test_b_many.py::test_many[-]".len());
    for (mode, forked) in [("fork", true), ("spawn", false)] {
        let base = dir.path().join(format!("base-{mode}"));
        let base_arg = format!("--basetemp={}", base.join("b").display());
        std::fs::create_dir_all(&base).unwrap();
        let out = run(
            dir.path(),
            &["-n", "2", "--dist", "each", "--start", mode, &base_arg],
        );
        assert_eq!(out.code, Some(0), "{mode}: {}", out.describe(6000));
        for worker in ["gw0", "gw1"] {
            let path = base.join(format!("wchar-{worker}"));
            let wchar: usize = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{mode}: {}: {e}", path.display()))
                .trim()
                .parse()
                .unwrap();
            if forked {
                assert!(
                    wchar < collection_bytes / 4,
                    "{mode} {worker} wrote {wchar} bytes"
                );
            } else {
                assert!(
                    wchar > collection_bytes,
                    "{mode} {worker} wrote {wchar} bytes"
                );
            }
        }
    }
}
