//! Output of any size (issue 16, item 9): a passing test that prints hundreds of MB keeps
//! its pass, a failing one keeps its failure (the middle of an oversized text is cut,
//! visibly), and the controller's memory stays bounded whatever the workers print, captured
//! or live (`-s`), in many lines or in one.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Far above what the controller needs (~20-40 MB), far below the output sizes.
const CONTROLLER_RSS_BOUND_KB: u64 = 150 * 1024;
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The suite: `BIG_MB` MB printed by a passing and by a failing test, and an assertion
/// message of `BIG_MB / 4` MB; `-s` runs use the long-line tests.
const SUITE: &str = r#"
import os, sys
MB = float(os.environ["BIG_MB"])
LINES = ("x" * 99 + "\n") * 10000

def _print(mb):
    for _ in range(int(mb)):
        sys.stdout.write(LINES)
    sys.stdout.write("x" * int((mb - int(mb)) * 1000000) + "\nend of output\n")

def test_pass_prints():
    _print(MB)

def test_fail_prints():
    _print(MB)
    assert False, "failing after the output"

def test_fail_message():
    assert False, "z" * int(MB * 250000)

def test_one_long_line():
    chunk = "y" * 1000000
    for _ in range(int(MB)):
        sys.stdout.write(chunk)
    sys.stdout.write("\n")
"#;

/// Runs `cmd` (stdout into `stdout`), polling the process's `VmHWM` while it lives:
/// (exit code, peak RSS in kB of that process alone, not its workers).
fn run_measuring_rss(cmd: &mut Command, stdout: &Path) -> (Option<i32>, u64) {
    let out = std::fs::File::create(stdout).expect("stdout file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start xdist");
    let status_file = format!("/proc/{}/status", child.id());
    let start = Instant::now();
    let mut hwm = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                hwm = kb;
            }
        }
        if let Some(st) = child.try_wait().expect("wait") {
            return (st.code(), hwm);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end in {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn xdist(dir: &Path, mb: f64, args: &[&str]) -> Command {
    let python = test_python();
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &python);
    let mut cmd = clean_command(&argv[0], dir);
    cmd.args(&argv[1..])
        .args(["-p", "no:cacheprovider", "-rA"])
        .args(args)
        .env("BIG_MB", mb.to_string());
    cmd
}

#[test]
fn captured_output_of_any_size_keeps_each_outcome() {
    let dir = scratch_dir("big-captured");
    std::fs::write(dir.join("test_big.py"), SUITE).unwrap();
    // Below and above the 16 MiB a report may carry, and above the 64 MiB frame limit.
    for mb in [0.5, 70.0, 200.0] {
        let stdout = dir.join(format!("out-{mb}.txt"));
        let mut cmd = xdist(&dir, mb, &["-k", "not long_line"]);
        let (code, rss) = run_measuring_rss(&mut cmd, &stdout);
        let text = std::fs::read_to_string(&stdout).unwrap();
        let describe = || format!("{mb} MB: exit {code:?}\n{}", tail(&text, 3000));
        let summary = parse_summary(&text).unwrap_or_else(|| panic!("no summary: {}", describe()));
        assert_eq!(
            (summary.get("passed"), summary.get("failed"), code),
            (1, 2, Some(1)),
            "{}",
            describe()
        );
        assert!(!text.contains("crashed"), "{}", describe());
        assert!(
            text.contains("FAILED test_big.py::test_fail_prints - AssertionError: failing after"),
            "{}",
            describe()
        );
        // The end of the output is shown; the middle of an oversized one is cut, visibly.
        assert!(text.contains("end of output"), "{}", describe());
        let cut = text.contains("characters cut here");
        assert_eq!(cut, mb > 16.0, "{}", describe());
        assert!(
            rss < CONTROLLER_RSS_BOUND_KB,
            "{mb} MB: controller peak RSS {rss} kB"
        );
    }
}

#[test]
fn live_output_streams_with_bounded_memory() {
    let dir = scratch_dir("big-live");
    std::fs::write(dir.join("test_big.py"), SUITE).unwrap();
    for mb in [1.0, 200.0] {
        for (test, lines) in [("test_pass_prints", 1), ("test_one_long_line", 0)] {
            let stdout = dir.join(format!("out-{test}-{mb}.txt"));
            let mut cmd = xdist(&dir, mb, &["-s", "-q", "-k", test]);
            let (code, rss) = run_measuring_rss(&mut cmd, &stdout);
            let text = std::fs::read(&stdout).unwrap();
            let text = String::from_utf8_lossy(&text);
            assert_eq!(code, Some(0), "{test} {mb} MB: {}", tail(&text, 2000));
            let output: String = text.lines().filter(|l| l.starts_with("[gw")).collect();
            let chars = |c: char| output.chars().filter(|&x| x == c).count();
            let want = (mb * 1_000_000.0) as usize;
            if lines == 1 {
                assert!(chars('x') >= want * 99 / 100, "{test} {mb} MB: output lost");
            } else {
                // One line, in pieces: none lost, and no line break after each piece (a
                // progress letter arriving before the line's end may still break it once).
                assert_eq!(chars('y'), want, "{test} {mb} MB: output lost");
                let lines = text.lines().filter(|l| l.starts_with("[gw")).count();
                assert!(lines <= 3, "{test} {mb} MB: line split {lines} times");
            }
            assert!(
                rss < CONTROLLER_RSS_BOUND_KB,
                "{test} {mb} MB: controller peak RSS {rss} kB"
            );
        }
    }
}
