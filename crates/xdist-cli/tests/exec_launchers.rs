//! `--tx exec=COMMAND` with real launchers on this machine: one that puts each worker in its
//! own PID, mount and network namespaces (`unshare`, util-linux; needs root or user
//! namespaces), a plain `sh -c`, and one that dies mid-run. Each is compared with serial
//! pytest on an example suite.
//!
//! Where `unshare` cannot create namespaces the namespace test prints why and passes,
//! unless `XDIST_REQUIRE_UNSHARE` is set (as `.ci/run` does), where it fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const XDIST: &str = env!("CARGO_BIN_EXE_xdist");
const TIMEOUT: Duration = Duration::from_secs(180);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn with_exec(dir: &Path, specs: &[String], extra: &[&str]) -> RunOutput {
    let mut cmd = clean_command(XDIST, dir);
    for s in specs {
        cmd.arg("--tx").arg(s);
    }
    cmd.args(["-v", "-p", "no:cacheprovider"]).args(extra);
    run_with_timeout(&mut cmd, TIMEOUT)
}

/// Same per-test outcomes and summary counts as the serial run.
fn assert_same_as_serial(serial: &RunOutput, dist: &RunOutput) {
    let expected = outcome_multiset(&parse_serial_v(&serial.stdout));
    let got = outcome_multiset(&parse_dist_v(&dist.stdout));
    assert_eq!(got, expected, "{}", dist.describe(4000));
    let (s, d) = (parse_summary(&serial.stdout), parse_summary(&dist.stdout));
    assert_eq!(
        s.map(|s| s.counts),
        d.map(|d| d.counts),
        "{}",
        dist.describe(3000)
    );
    assert_eq!(serial.code, dist.code, "{}", dist.describe(3000));
}

fn namespaces_work() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["--fork", "--pid", "--mount-proc", "--net", "true"])
        .output()
        .map_err(|e| format!("unshare not available ({e}); Debian: util-linux"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unshare cannot create namespaces here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn namespaced_launcher_matches_serial_pytest() {
    if let Err(why) = namespaces_work() {
        if std::env::var_os("XDIST_REQUIRE_UNSHARE").is_some_and(|v| !v.is_empty()) {
            panic!("XDIST_REQUIRE_UNSHARE is set but {why}");
        }
        println!("SKIPPED: {why}; set XDIST_REQUIRE_UNSHARE=1 to make this a failure");
        return;
    }
    let py = test_python();
    let launcher = format!(
        "exec=unshare --fork --pid --mount-proc --net {}",
        py.display()
    );
    let dir = example_copy("basic", "exec-unshare");
    let expected = run_serial_v(&py, &dir, &[]);
    let out = with_exec(&dir, &[format!("2*{launcher}")], &[]);
    assert_same_as_serial(&expected, &out);

    // The workers really are inside: each is PID 1 of its own namespace and sees only a
    // loopback interface; `//env:`, `//chdir=` and `//id=` reach them.
    let probe = scratch_dir("exec-unshare-probe");
    let work = probe.join("work area");
    write(
        &probe.join("test_probe.py"),
        &format!(
            "import os\n\n\
             def test_inside_namespaces():\n    assert os.getpid() == 1\n    \
             devs = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]\n    \
             assert devs == ['lo'], devs\n\n\
             def test_spec_options():\n    assert os.environ['PROBE'] == 'a b'\n    \
             assert os.getcwd() == {:?}\n    assert os.environ['PYTEST_XDIST_WORKER'] == 'box'\n",
            work.display().to_string()
        ),
    );
    let spec = format!(
        "{launcher}//env:PROBE=a b//chdir={}//id=box",
        work.display()
    );
    let out = with_exec(
        &probe,
        &[spec],
        &[probe.join("test_probe.py").to_str().unwrap()],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe(4000));
    assert!(out.stdout.contains("2 passed"), "{}", out.describe(3000));
}

#[test]
fn sh_launcher_matches_serial_pytest() {
    let py = test_python();
    let dir = example_copy("basic", "exec-sh");
    let expected = run_serial_v(&py, &dir, &[]);
    // The command is split by shell word rules: the single-quoted script is one word.
    let spec = format!("2*exec=sh -c 'exec \"$0\" \"$@\"' {}", py.display());
    let out = with_exec(&dir, &[spec], &[]);
    assert_same_as_serial(&expected, &out);
}

/// The launcher (a shell that stays the worker's parent) is killed while a test runs: only
/// that test fails, with the launcher's stderr; the worker is replaced, every other test
/// runs, and nothing started for the run is left behind.
#[test]
fn launcher_dying_mid_run_fails_only_its_test() {
    let py = test_python();
    let dir = scratch_dir("exec-dying");
    write(
        &dir.join("tests/test_work.py"),
        "import os, signal, time\nimport pytest\n\n\
         @pytest.mark.parametrize('n', range(12))\ndef test_quick(n):\n    time.sleep(0.02)\n\n\
         def test_kills_its_launcher():\n    if os.environ.get('KILL_LAUNCHER') == '1':\n        \
         os.kill(os.getppid(), signal.SIGKILL)\n        time.sleep(30)\n\n\
         def test_fails():\n    assert 1 == 2\n",
    );
    let expected = run_serial_v(&py, &dir, &[]);
    let marker = format!("XDIST_LAUNCHER_MARK={}", std::process::id());
    // `; exit $?` keeps the shell from exec'ing Python: it stays the worker's parent.
    let spec = format!(
        "2*exec=sh -c 'echo launcher-up >&2; \"$0\" \"$@\"; exit $?' {}//env:KILL_LAUNCHER=1//env:{marker}",
        py.display()
    );
    // The spec's env reaches the worker, not the shell: mark the shell too.
    let (k, v) = marker.split_once('=').unwrap();
    let mut cmd = clean_command(XDIST, &dir);
    cmd.env(k, v)
        .args(["--tx", &spec, "-v", "-p", "no:cacheprovider"]);
    let out = run_with_timeout(&mut cmd, TIMEOUT);
    assert_eq!(out.code, Some(1), "{}", out.describe(4000));
    let mut want: BTreeMap<(String, String), usize> =
        outcome_multiset(&parse_serial_v(&expected.stdout));
    let killer = "tests/test_work.py::test_kills_its_launcher".to_string();
    assert_eq!(want.remove(&(killer.clone(), "PASSED".into())), Some(1));
    want.insert((killer.clone(), "FAILED".into()), 1);
    assert_eq!(
        outcome_multiset(&parse_dist_v(&out.stdout)),
        want,
        "{}",
        out.describe(4000)
    );
    for needle in [
        format!("crashed while running '{killer}'"),
        "replacing crashed worker".to_string(),
        "launcher-up".to_string(),
        "2 failed, 12 passed".to_string(),
    ] {
        assert!(
            out.stdout.contains(&needle),
            "{needle}\n{}",
            out.describe(4000)
        );
    }
    // Nothing left running: not the orphaned worker, not a launcher.
    assert_nothing_left_with(&marker);
}

/// `--hang-timeout` on an exec worker: the stacks come over the channel (the launcher's
/// signals would not reach a Python inside a container), the test fails, the rest runs.
#[test]
fn hung_exec_worker_is_cut_with_its_stack() {
    let py = test_python();
    let dir = scratch_dir("exec-hang");
    write(&dir.join("test_hang.py"), HANG_SUITE);
    let spec = format!("2*exec={}", py.display());
    let out = with_exec(&dir, &[spec], &["--hang-timeout", "2"]);
    assert_eq!(out.code, Some(1), "{}", out.describe(4000));
    for needle in HANG_NEEDLES {
        assert!(
            out.stdout.contains(needle),
            "{needle}\n{}",
            out.describe(6000)
        );
    }
}

#[test]
fn exec_spec_errors_are_usage_errors() {
    let dir = scratch_dir("exec-bad");
    for (args, needle) in [
        (
            vec!["--tx", "exec=python3", "--rsyncdir", "."],
            "--rsyncdir does not apply to exec= workers",
        ),
        (vec!["--tx", "exec=sh -c 'oops"], "bad exec command"),
        (
            vec!["--tx", "exec=python3//python=python3"],
            "'python' does not apply to exec=",
        ),
        (vec!["--tx", "exec="], "'exec' needs a value"),
    ] {
        let out = run_with_timeout(clean_command(XDIST, &dir).args(&args), TIMEOUT);
        assert_eq!(out.code, Some(4), "{}", out.describe(2000));
        assert!(
            out.stderr.contains(needle),
            "{needle}\n{}",
            out.describe(2000)
        );
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{}",
            out.describe(2000)
        );
    }
    // A launcher that cannot start says which.
    let out = run_with_timeout(
        clean_command(XDIST, &dir).args(["--tx", "exec=/nonexistent/launcher -i box python3"]),
        TIMEOUT,
    );
    assert_ne!(out.code, Some(0), "{}", out.describe(2000));
    assert!(
        out.stderr.contains("/nonexistent/launcher"),
        "{}",
        out.describe(2000)
    );
}

/// Ctrl-C during a run with exec workers: running tests finish, the run ends with pytest's
/// interrupted status, and no launcher or worker outlives it.
#[test]
fn ctrl_c_ends_an_exec_run_cleanly() {
    let py = test_python();
    let dir = scratch_dir("exec-ctrl-c");
    write(
        &dir.join("test_slow.py"),
        "import time\nimport pytest\n\n\
         @pytest.mark.parametrize('n', range(40))\ndef test_slow(n):\n    time.sleep(0.5)\n",
    );
    let marker = format!("XDIST_CTRL_C_MARK={}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    let spec = format!(
        "2*exec=sh -c '\"$0\" \"$@\"; exit $?' {}//env:{marker}",
        py.display()
    );
    let log = dir.join("out.log");
    let mut child = clean_command(XDIST, &dir)
        .env(k, v)
        .args(["--tx", &spec, "-v", "-p", "no:cacheprovider"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("PASSED")
    {
        assert!(Instant::now() < deadline, "no test finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on the child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(2), "{text}");
    assert!(text.contains("KeyboardInterrupt"), "{text}");
    assert_nothing_left_with(&marker);
}
