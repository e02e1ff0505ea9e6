//! The live status line on a terminal: run `xdist -n 2` under a pseudo-terminal, feed what
//! it writes to a terminal emulator (`vt100`), and check that
//! - while a slow test runs, the bottom line names it, its worker and its running time, with
//!   `completed/total`;
//! - the final screen (escape sequences interpreted) is exactly the piped output: the status
//!   line never corrupts the scrolling output and is gone at the end — on a tall terminal
//!   (nothing scrolls) and on a short one (everything scrolls);
//! - piped, `-q` and `XDIST_NO_STATUS=1` runs have no status line.

mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use regex::Regex;

const COLS: u16 = 100;

fn suite(dir: &Path) {
    std::fs::write(
        dir.join("test_fast.py"),
        "import pytest\n\n@pytest.mark.parametrize('i', range(30))\ndef test_fast(i):\n    pass\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("test_slow.py"),
        "import time\n\ndef test_slow():\n    time.sleep(1.5)\n\ndef test_fails():\n    assert 1 == 2\n",
    )
    .unwrap();
}

fn xdist_cmd(python: &Path, dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_xdist"), dir);
    cmd.args(["--python", &python.to_string_lossy(), "-n", "2"])
        .args(["-p", "no:randomly", "-p", "no:cacheprovider"])
        .args(extra)
        .env("COLUMNS", COLS.to_string())
        .env("TERM", "xterm")
        .env_remove("XDIST_NO_STATUS")
        .env_remove("NO_COLOR");
    cmd
}

/// Runs `cmd` with stdout and stderr on a new pseudo-terminal of `rows` x COLS; returns
/// everything written, with when each chunk arrived.
fn run_in_pty(mut cmd: Command, rows: u16) -> Vec<(Instant, Vec<u8>)> {
    let (mut master, mut slave) = (-1, -1);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: COLS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: fresh fds from openpty.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("spawn xdist");
    drop(cmd); // closes our copies of the slave
    let mut file = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut chunks = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO once the last slave fd closed
                Ok(n) => chunks.push((Instant::now(), buf[..n].to_vec())),
            }
        }
        chunks
    });
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("xdist under a pty timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().unwrap()
}

fn normalize(text: &str) -> String {
    let t = Regex::new(r" in \d+\.\d\ds").unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| t.replace_all(l.trim_end(), " in N.NNs").into_owned())
        .collect();
    lines.join("\n").trim_end().to_string()
}

/// The piped output: the reference. Piped, pytest-xdist writes each worker status line
/// (`created: 2/2 workers`, then `2 workers [31 items]`); on a terminal the last rewrites the
/// others, so the reference drops them.
fn piped(python: &Path, dir: &Path) -> String {
    let out = run_with_timeout(
        &mut xdist_cmd(python, dir, &["-k", "not fails"]),
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "{}", out.describe(4000));
    assert!(!out.stdout.contains('\x1b'), "{}", out.stdout);
    assert!(!Regex::new(r"\[\d+/\d+\]").unwrap().is_match(&out.stdout));
    as_on_a_terminal(&out.stdout)
}

/// Piped output as a terminal shows it: without the status lines the last one rewrote.
fn as_on_a_terminal(piped: &str) -> String {
    assert!(piped.contains("\ncreated: 2/2 workers\n"), "{piped}");
    piped.replace("\ncreated: 2/2 workers\n", "\n")
}

/// On a terminal the worker status is one line rewritten in place, as pytest-xdist's: `-q`
/// shows `bringing up nodes...` once (piped it is written twice, as pytest-xdist does), for
/// local and socket workers.
#[test]
fn worker_status_is_one_line_on_a_terminal() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    suite(tmp.path());
    let mut server = Command::new(env!("CARGO_BIN_EXE_xdist"))
        .args(["serve", "--listen", "127.0.0.1:0", "--python"])
        .arg(&python)
        .env("XDIST_TOKEN", "tty-token")
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("xdist serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().to_string();
    let socket = format!("--tx=2*socket=127.0.0.1:{port}");
    for (tx, quiet) in [(None, true), (Some(&socket), true), (Some(&socket), false)] {
        let mut extra = vec!["-k", "not fails"];
        if quiet {
            extra.push("-q");
        }
        let mut cmd = xdist_cmd(&python, tmp.path(), &extra);
        if let Some(tx) = tx {
            cmd.arg(tx).env("XDIST_TOKEN", "tty-token");
        }
        let chunks = run_in_pty(cmd, 200);
        let mut parser = vt100::Parser::new(200, COLS, 0);
        for (_, chunk) in &chunks {
            parser.process(chunk);
        }
        let screen = parser.screen().contents();
        let status: Vec<&str> = screen
            .lines()
            .filter(|l| l.contains("bringing up nodes") || l.contains(" workers"))
            .map(str::trim_end)
            .collect();
        let want = if quiet {
            "bringing up nodes..."
        } else {
            "2 workers [31 items]"
        };
        assert_eq!(status, [want], "{tx:?} quiet={quiet}:\n{screen}");
        assert!(screen.contains("31 passed"), "{tx:?}:\n{screen}");
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn status_line_shows_running_tests_and_never_corrupts_output() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    suite(tmp.path());
    let expected = normalize(&piped(&python, tmp.path()));

    let chunks = run_in_pty(xdist_cmd(&python, tmp.path(), &["-k", "not fails"]), 200);
    let raw: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
    let raw_text = String::from_utf8_lossy(&raw);
    // The status line named the slow test with a growing time.
    let status =
        Regex::new(r"\[(\d+)/31\](?: ETA \S+)? \| gw[01] (\d+\.\d)s test_slow\.py::test_slow")
            .unwrap();
    let times: Vec<f64> = status
        .captures_iter(&raw_text)
        .map(|c| c[2].parse().unwrap())
        .collect();
    assert!(
        times.iter().any(|&t| t >= 0.5),
        "no status line with test_slow running for a while: {times:?}\n{raw_text:?}"
    );
    // It was on the screen while the test ran: replay up to a chunk in the middle.
    let mut parser = vt100::Parser::new(200, COLS, 0);
    let mut seen_mid_run = false;
    for (_, chunk) in &chunks {
        parser.process(chunk);
        let screen = parser.screen().contents();
        if screen.lines().any(|l| status.is_match(l)) {
            seen_mid_run = true;
        }
    }
    assert!(seen_mid_run, "the status line was never on the screen");
    // And the final screen is exactly the piped output.
    let screen = normalize(&parser.screen().contents());
    assert_eq!(screen, expected, "raw: {raw_text:?}");
}

#[test]
fn scrolling_terminal_ends_with_the_piped_output() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    suite(tmp.path());
    let expected = normalize(&piped(&python, tmp.path()));
    let rows = 8u16;
    let chunks = run_in_pty(xdist_cmd(&python, tmp.path(), &["-k", "not fails"]), rows);
    let mut parser = vt100::Parser::new(rows, COLS, 0);
    for (_, chunk) in &chunks {
        parser.process(chunk);
    }
    let screen = normalize(&parser.screen().contents());
    let want: Vec<&str> = expected.lines().collect();
    let got: Vec<&str> = screen.lines().collect();
    assert!(!got.is_empty());
    assert_eq!(
        got,
        want[want.len() - got.len()..].to_vec(),
        "screen:\n{screen}\nexpected tail of:\n{expected}"
    );
}

#[test]
fn failures_and_verbose_lines_are_intact() {
    // -v writes whole lines; a failure adds sections: compare the same way (order of the
    // per-test lines may differ between runs, so compare them as sets).
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    suite(tmp.path());
    let chunks = run_in_pty(xdist_cmd(&python, tmp.path(), &["-v"]), 300);
    let mut parser = vt100::Parser::new(300, COLS, 0);
    for (_, chunk) in &chunks {
        parser.process(chunk);
    }
    let screen = normalize(&parser.screen().contents());
    let out = run_with_timeout(
        &mut xdist_cmd(&python, tmp.path(), &["-v"]),
        Duration::from_secs(120),
    );
    let expected = normalize(&as_on_a_terminal(&out.stdout));
    // Which worker ran a test, and so the percentages, differ between runs.
    let prefix = Regex::new(r"\[gw\d+\]( \[\s*\d+%\])?").unwrap();
    let screen = prefix.replace_all(&screen, "[gwN]").into_owned();
    let expected = prefix.replace_all(&expected, "[gwN]").into_owned();
    let mut a: Vec<&str> = screen.lines().collect();
    let mut b: Vec<&str> = expected.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "screen:\n{screen}\npiped:\n{expected}");
    assert!(!screen.contains(" | gw"), "{screen}");
}

#[test]
fn no_status_when_quiet_or_disabled() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    suite(tmp.path());
    for (extra, env) in [(&["-q"][..], None), (&[][..], Some("1"))] {
        let mut cmd = xdist_cmd(&python, tmp.path(), extra);
        if let Some(v) = env {
            cmd.env("XDIST_NO_STATUS", v);
        }
        let chunks = run_in_pty(cmd, 100);
        let raw: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(" | gw"), "{extra:?} {env:?}: {text:?}");
        assert!(!text.contains("\x1b[K"), "{extra:?} {env:?}: {text:?}");
    }
}
