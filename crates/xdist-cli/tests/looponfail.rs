//! A real watch session: `xdist -f` on a temp suite, fixed by editing a file.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "timed out waiting for {needle:?}; output so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn reruns_the_failure_on_save_then_the_whole_suite() {
    let python = common::test_python();
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    std::fs::create_dir(&suite).unwrap();
    std::fs::write(suite.join("pytest.ini"), "[pytest]\n").unwrap();
    let test_file = suite.join("test_loop.py");
    std::fs::write(
        &test_file,
        "def test_bad():\n    assert 1 == 2\n\ndef test_good():\n    pass\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_xdist"))
        .args(["-f", "-n", "2", "--python"])
        .arg(&python)
        .args(["-p", "no:cacheprovider"])
        .current_dir(&suite)
        .env("PY_COLORS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Killed on drop, so a failing assertion never leaves the watcher running.
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, "LOOPONFAILING", 30);
    wait_for(&rx, &mut seen, "waiting for changes", 10);
    assert!(seen.iter().any(|l| l.trim() == "test_loop.py::test_bad"));
    assert!(seen.iter().any(|l| l.contains("1 failed, 1 passed")));

    let saved = Instant::now();
    seen.clear();
    std::fs::write(
        &test_file,
        "def test_bad():\n    assert 1 == 1\n\ndef test_good():\n    pass\n",
    )
    .unwrap();
    wait_for(&rx, &mut seen, "# MODIFIED", 10);
    wait_for(&rx, &mut seen, "test session starts", 10);
    let to_rerun = saved.elapsed();
    // Exactly the failing test reruns, then the whole suite.
    wait_for(&rx, &mut seen, "[1 item]", 20);
    wait_for(&rx, &mut seen, "1 passed", 20);
    wait_for(&rx, &mut seen, "[2 items]", 20);
    wait_for(&rx, &mut seen, "2 passed", 20);
    wait_for(&rx, &mut seen, "waiting for changes", 10);
    assert!(
        to_rerun < Duration::from_secs(2),
        "rerun started {to_rerun:?} after the save"
    );

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGINT);
    }
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "Ctrl-C ends the loop with exit code 2"
    );
}

#[test]
fn looponfail_with_pdb_is_refused() {
    let python = common::test_python();
    let out = Command::new(env!("CARGO_BIN_EXE_xdist"))
        .args(["-f", "--pdb", "-n", "2", "--python"])
        .arg(&python)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--pdb is incompatible with --looponfail."),
        "{err}"
    );
}
