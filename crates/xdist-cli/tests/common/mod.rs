// Over 700 lines on purpose: the one helper module all test binaries in tests/ share (repo and venvs, timeouts, pytest output parsers), one place to look for any of them.
//! Helpers shared by the integration tests of the `xdist` binary: locate the
//! repo and its Python venvs, run a command with a timeout, and parse what
//! pytest / xdist print (`-v` outcome lines, the final summary line).
//!
//! Use from a test file with `mod common;`. Not every test file uses every
//! helper, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::Regex;
use wait_timeout::ChildExt;

/// Example suites with no serial pytest run to compare with, checked elsewhere (`nondeterministic`: its node ids differ per process, see
/// `nondeterministic_ids_need_one_collection`; the seed's conftests implement pytest-xdist's
/// hooks, unknown to plain pytest: `controller_hooks.rs`, and `seed_hooks.rs` for
/// `crash_recovery` and `priority_scheduler`, which crash workers or import pytest-xdist).
pub const NOT_COMPARED: &[&str] = &[
    "crash_recovery",
    "crashes",
    "nondeterministic",
    "priority_scheduler",
    "seed_collection",
    "seed_lifecycle",
    "seed_worker_count",
];

// ---------------------------------------------------------------------------
// Locations and interpreters
// ---------------------------------------------------------------------------

/// Root of the repository (the Cargo workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// `<repo>/examples`.
pub fn examples_dir() -> PathBuf {
    repo_root().join("examples")
}

/// The interpreter named by env var `var`, else `<repo>/<default_rel>`.
/// Returns `(path, explicitly_set)`.
pub fn python_from_env(var: &str, default_rel: &str) -> (PathBuf, bool) {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => (PathBuf::from(v), true),
        _ => (repo_root().join(default_rel), false),
    }
}

/// The interpreter with plain pytest: `XDIST_TEST_PYTHON`, default
/// `<repo>/.venv/bin/python`. Panics (fails the test) with a hint to run
/// `dev/venv.sh` when it does not exist: tests must never pass silently.
pub fn test_python() -> PathBuf {
    let (py, explicit) = python_from_env("XDIST_TEST_PYTHON", ".venv/bin/python");
    if !py.exists() {
        if explicit {
            panic!("XDIST_TEST_PYTHON={} does not exist", py.display());
        }
        panic!(
            "{} does not exist: run `dev/venv.sh` at the repo root to create the test venvs \
             (or set XDIST_TEST_PYTHON to a python that has pytest 9.2)",
            py.display()
        );
    }
    py
}

/// The interpreter that also has pytest-xdist installed:
/// `XDIST_TEST_PYTHON_WITH_XDIST`, default `<repo>/.venv-xdist/bin/python`.
/// `None` if it does not exist (unless set explicitly, then it panics).
pub fn test_python_with_xdist() -> Option<PathBuf> {
    let (py, explicit) = python_from_env("XDIST_TEST_PYTHON_WITH_XDIST", ".venv-xdist/bin/python");
    if py.exists() {
        Some(py)
    } else if explicit {
        panic!(
            "XDIST_TEST_PYTHON_WITH_XDIST={} does not exist",
            py.display()
        );
    } else {
        None
    }
}

/// How to start a distributed run: the program and its first arguments, to
/// which the caller appends pytest arguments.
///
/// Default: `<xdist binary> --python <python> -n 2`.
///
/// `XDIST_TEST_DISTRIBUTED_CMD` replaces it (split on whitespace; `{python}`
/// is replaced by the interpreter under test), e.g. to validate the tests
/// against pytest-xdist itself:
/// `XDIST_TEST_DISTRIBUTED_CMD='{python} -m pytest -n 2' XDIST_TEST_PYTHON=.venv-xdist/bin/python`
pub fn distributed_cmd(xdist_bin: &str, python: &Path) -> Vec<String> {
    match std::env::var("XDIST_TEST_DISTRIBUTED_CMD") {
        Ok(cmd) if !cmd.trim().is_empty() => cmd
            .split_whitespace()
            .map(|w| w.replace("{python}", &python.to_string_lossy()))
            .collect(),
        _ => vec![
            xdist_bin.to_string(),
            "--python".to_string(),
            python.to_string_lossy().into_owned(),
            "-n".to_string(),
            "2".to_string(),
        ],
    }
}

/// How xdist's local workers start: every comparison runs in both modes.
pub const START_MODES: &[&str] = &["spawn", "fork"];

/// `--start MODE` for the xdist binary; nothing when `XDIST_TEST_DISTRIBUTED_CMD` replaces it.
pub fn start_args(mode: &str) -> Vec<String> {
    if distributed_cmd_overridden() {
        return Vec::new();
    }
    vec!["--start".to_string(), mode.to_string()]
}

/// True when `XDIST_TEST_DISTRIBUTED_CMD` overrides the xdist binary.
pub fn distributed_cmd_overridden() -> bool {
    std::env::var("XDIST_TEST_DISTRIBUTED_CMD").is_ok_and(|c| !c.trim().is_empty())
}

// ---------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------

/// What a finished (or killed) command left.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub cmdline: String,
    pub stdout: String,
    pub stderr: String,
    /// Exit code; `None` if killed by a signal or by the timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl RunOutput {
    /// A description for assertion messages: command, exit, both streams
    /// (each cut to its last `max` bytes).
    pub fn describe(&self, max: usize) -> String {
        format!(
            "$ {}\n[exit: {:?}{}, {:.2?}]\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code,
            if self.timed_out { ", TIMED OUT" } else { "" },
            self.elapsed,
            tail(&self.stdout, max),
            tail(&self.stderr, max)
        )
    }
}

/// The last `max` bytes of `s` (on a char boundary), marked if cut.
pub fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {} bytes cut ...]\n{}", start, &s[start..])
}

/// Run `cmd` to completion with stdin closed, capturing stdout and stderr;
/// kill it (and report `timed_out`) after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> RunOutput {
    let cmdline = format!("{:?}", cmd);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let (status, timed_out) = match child.wait_timeout(timeout).expect("wait") {
        Some(st) => (Some(st), false),
        None => {
            let _ = child.kill();
            (child.wait().ok(), true)
        }
    };
    // A grandchild (a worker) may keep the pipes open after a kill: don't
    // wait for the readers forever then.
    let join = |t: std::thread::JoinHandle<Vec<u8>>| -> String {
        let deadline = Instant::now() + Duration::from_secs(if timed_out { 5 } else { 60 });
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if t.is_finished() {
            String::from_utf8_lossy(&t.join().unwrap_or_default()).into_owned()
        } else {
            "[output reader still blocked: a child process kept the pipe open]".to_string()
        }
    };
    let stdout = join(out_t);
    let stderr = join(err_t);
    RunOutput {
        cmdline,
        stdout,
        stderr,
        code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        timed_out,
        elapsed: start.elapsed(),
    }
}

// ---------------------------------------------------------------------------
// Parsing pytest output
// ---------------------------------------------------------------------------

/// One per-test `-v` line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutcomeLine {
    pub nodeid: String,
    /// `PASSED`, `FAILED`, `ERROR`, `SKIPPED`, `XFAIL`, `XPASS`, or a
    /// subtest word `SUBPASSED`, `SUBFAILED`, `SUBSKIPPED`, ...
    pub word: String,
    /// For distributed lines: the worker (`gw0`...).
    pub worker: Option<String>,
}

const WORDS: &str = r"PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS|SUB[A-Z]+";

fn serial_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // `path::test[id] PASSED   [ 10%]`, `path::test SKIPPED (reason) [ 20%]`,
    // `path::test SUBPASSED[msg] (i=0) [ 30%]`. Node ids may hold spaces
    // (parametrize ids), so the id is everything up to the first outcome
    // word that is followed by a descriptor and the percentage.
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"^(?P<nodeid>\S.*?) (?P<word>{WORDS})(?:[\[( ].*?)?\s*\[\s*\d+%\]\s*$"
        ))
        .unwrap()
    })
}

fn dist_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // `[gw0] [ 10%] PASSED path::test`, `[gw1] [ 20%] SUBPASSED[msg] (i='0') path::test`.
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"^\[(?P<worker>gw\d+)\] \[\s*\d+%\] (?P<word>{WORDS})(?:\[[^\]]*\])?(?: ?\([^)]*\))? (?P<nodeid>.*?)\s*$"
        ))
        .unwrap()
    })
}

/// Outcome lines of a serial `pytest -v` run, in order.
pub fn parse_serial_v(text: &str) -> Vec<OutcomeLine> {
    text.lines()
        .filter_map(|l| {
            let c = serial_re().captures(l)?;
            Some(OutcomeLine {
                nodeid: c["nodeid"].to_string(),
                word: c["word"].to_string(),
                worker: None,
            })
        })
        .collect()
}

/// Outcome lines of a distributed `-v` run (`[gwN] [ NN%] WORD nodeid`), in
/// order. Text that a dying worker wrote to the terminal may follow the node
/// id on the same line (pytest-xdist: `... PASSED t.py::test_x Fatal Python
/// error: ...`); see [`match_nodeid`].
pub fn parse_dist_v(text: &str) -> Vec<OutcomeLine> {
    text.lines()
        .filter_map(|l| {
            let c = dist_re().captures(l)?;
            Some(OutcomeLine {
                nodeid: c["nodeid"].to_string(),
                word: c["word"].to_string(),
                worker: Some(c["worker"].to_string()),
            })
        })
        .collect()
}

/// Whether a parsed `raw` node id is `nodeid`, allowing trailing junk after
/// a space (interleaved output of a crashing worker).
pub fn match_nodeid(raw: &str, nodeid: &str) -> bool {
    raw == nodeid || (raw.starts_with(nodeid) && raw[nodeid.len()..].starts_with(' '))
}

/// Multiset of `(nodeid, word)`.
pub fn outcome_multiset(lines: &[OutcomeLine]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry((l.nodeid.clone(), l.word.clone())).or_insert(0) += 1;
    }
    m
}

/// Human-readable difference of two multisets (empty if equal).
pub fn multiset_diff(
    expected: &BTreeMap<(String, String), usize>,
    actual: &BTreeMap<(String, String), usize>,
) -> String {
    let mut out = String::new();
    let keys: std::collections::BTreeSet<_> = expected.keys().chain(actual.keys()).collect();
    for k in keys {
        let e = expected.get(k).copied().unwrap_or(0);
        let a = actual.get(k).copied().unwrap_or(0);
        if e != a {
            out.push_str(&format!(
                "  {} {}: serial {} x, distributed {} x\n",
                k.1, k.0, e, a
            ));
        }
    }
    out
}

/// The final summary line, e.g.
/// `== 3 failed, 10 passed, 1 skipped, 2 warnings, 2 errors in 0.12s ==`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `"failed" -> 3`, `"subtests passed" -> 7`, ... (label as printed).
    pub counts: BTreeMap<String, u64>,
    /// The line as printed.
    pub line: String,
}

impl Summary {
    pub fn get(&self, label: &str) -> u64 {
        self.counts.get(label).copied().unwrap_or(0)
    }
}

/// Parse one summary text such as `3 failed, 10 passed in 0.12s` (with or
/// without the `=` frame). `no tests ran in 0.01s` gives empty counts.
pub fn parse_summary_line(line: &str) -> Option<Summary> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^=*\s*(?P<body>.*?) in [0-9.]+s(?: \([0-9:]+\))?\s*=*\s*$").unwrap()
    });
    let c = re.captures(line.trim())?;
    let body = c["body"].trim();
    let mut counts = BTreeMap::new();
    if body != "no tests ran" {
        for part in body.split(", ") {
            let (n, label) = part.trim().split_once(' ')?;
            let n: u64 = n.parse().ok()?;
            // pytest pluralises some labels only sometimes ("1 error", "2 errors")
            let label = match label {
                "error" => "errors",
                "warning" => "warnings",
                other => other,
            };
            counts.insert(label.to_string(), n);
        }
    }
    Some(Summary {
        counts,
        line: line.trim().to_string(),
    })
}

/// The last summary line of a pytest run's output.
pub fn parse_summary(text: &str) -> Option<Summary> {
    text.lines()
        .rev()
        .filter(|l| {
            l.starts_with('=')
                || l.chars().next().is_some_and(|c| c.is_ascii_digit())
                || l.starts_with("no tests ran")
        })
        .find_map(parse_summary_line)
}

/// Number of tests a serial run selected: from `collected N items`,
/// `collected N items / K deselected / M selected`, `collected N items / E errors`.
pub fn parse_collected(text: &str) -> Option<u64> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"collected (?P<n>\d+) items?(?P<rest>.*)$").unwrap());
    static SEL: OnceLock<Regex> = OnceLock::new();
    let sel = SEL.get_or_init(|| Regex::new(r"/ (?P<m>\d+) selected").unwrap());
    text.lines().find_map(|l| {
        let c = re.captures(l)?;
        if let Some(s) = sel.captures(&c["rest"]) {
            return s["m"].parse().ok();
        }
        c["n"].parse().ok()
    })
}

/// `N` from `2 workers [N items]` (or `[1 item]`).
pub fn parse_workers_items(text: &str) -> Option<(u64, u64)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"^(\d+) workers? \[(\d+) items?\]\s*$").unwrap());
    text.lines().find_map(|l| {
        let c = re.captures(l)?;
        Some((c[1].parse().ok()?, c[2].parse().ok()?))
    })
}

// ---------------------------------------------------------------------------
// File reports (junitxml, report-log, cache) and summary sections
// ---------------------------------------------------------------------------

/// A command for running `program` in `dir` with the environment variables that would
/// change a suite's outcome removed, hash seeds fixed (so set/dict diffs print alike in
/// every process) and a wide terminal (so short-summary lines are not cut).
pub fn clean_command(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONHASHSEED", "0")
        .env("COLUMNS", "200")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("PYTEST_XDIST_AUTO_NUM_WORKERS")
        .env_remove("PYTEST_XDIST_WORKER")
        .env_remove("PYTEST_XDIST_WORKER_COUNT")
        .env_remove("PYTEST_XDIST_TESTRUNUID")
        .env_remove("XDIST_PYTHON")
        .env_remove("XDIST_PLUGINS")
        .env_remove("VIRTUAL_ENV")
        .env_remove("PY_COLORS")
        .env_remove("FORCE_COLOR");
    cmd
}

/// Python (ElementTree) that turns a JUnit XML file into comparable JSON: the testsuite's
/// attributes without time/timestamp/hostname, and the testcases (sorted) with their
/// attributes without time, and their children (tag, attributes with the first line of
/// `message`, optionally the text), memory addresses masked.
const JUNIT_NORMALIZER: &str = r#"
import json, re, sys, xml.etree.ElementTree as ET
path, with_text = sys.argv[1], sys.argv[2] == "1"
addr = re.compile(r"0x[0-9a-fA-F]+")
def n(s):
    return addr.sub("0x?", s or "")
root = ET.parse(path).getroot()
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
assert len(suites) == 1, suites
s = suites[0]
float(s.get("time")); assert s.get("timestamp") and s.get("hostname") is not None
suite = {k: v for k, v in s.attrib.items() if k not in ("time", "timestamp", "hostname")}
cases = []
for tc in s.findall("testcase"):
    float(tc.get("time"))
    attrs = {k: v for k, v in tc.attrib.items() if k != "time"}
    kids = []
    for c in tc:
        if c.tag == "properties":
            kids.append({"tag": "properties",
                         "props": [[p.get("name"), p.get("value")] for p in c]})
            continue
        a = dict(c.attrib)
        if "message" in a:
            a["message"] = n(a["message"].split("\n")[0])
        k = {"tag": c.tag, "attrs": a}
        if with_text:
            k["text"] = n(c.text)
        kids.append(k)
    cases.append({"attrs": attrs, "children": kids})
cases.sort(key=lambda c: json.dumps(c, sort_keys=True))
print(json.dumps({"suite": suite, "testcases": cases}, sort_keys=True, indent=1))
"#;

/// The comparable form of a JUnit XML file (see `JUNIT_NORMALIZER`); Err when it is not
/// well-formed or not shaped like pytest's.
pub fn junit_normalized(python: &Path, path: &Path, with_text: bool) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", JUNIT_NORMALIZER])
        .arg(path)
        .arg(if with_text { "1" } else { "0" })
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} is not a pytest-shaped junit document:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lines of the `short test summary info` section.
pub fn short_summary_lines(text: &str) -> std::collections::BTreeSet<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains(" short test summary info "));
    lines.next();
    lines
        .take_while(|l| !l.starts_with('=') && !l.starts_with('!'))
        .filter(|l| !l.is_empty())
        // On CI (`CI` or `BUILD_NUMBER` set) pytest prints whole multi-line messages,
        // whose object addresses differ from process to process.
        .map(|l| address_re().replace_all(l, "0x?").into_owned())
        .collect()
}

fn address_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"0x[0-9a-fA-F]+").expect("valid regex"))
}

/// Copies a directory tree (an example suite) into `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "__pycache__" || name == ".pytest_cache" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy");
        }
    }
}

/// A fresh, empty scratch directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdist-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A copy of the example suite `example` in a fresh scratch directory `name`.
pub fn example_copy(example: &str, name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    copy_tree(&examples_dir().join(example), &dir);
    dir
}

/// Serial `python -m pytest -v -p no:cacheprovider ARGS` in `dir`; it must print outcomes.
pub fn run_serial_v(python: &Path, dir: &Path, args: &[&str]) -> RunOutput {
    let out = run_with_timeout(
        clean_command(python.to_str().expect("utf-8 path"), dir)
            .args(["-m", "pytest", "-v", "-p", "no:cacheprovider"])
            .args(args),
        Duration::from_secs(180),
    );
    assert!(
        !parse_serial_v(&out.stdout).is_empty(),
        "{}",
        out.describe(3000)
    );
    out
}

/// A test file with a test that hangs in `wait_forever` and four that pass.
pub const HANG_SUITE: &str = "import time\nimport pytest\n\n\
     def wait_forever():\n    while True:\n        time.sleep(0.1)\n\n\
     def test_hang():\n    wait_forever()\n\n\
     @pytest.mark.parametrize('n', range(4))\ndef test_ok(n):\n    pass\n";

/// What a run of [`HANG_SUITE`] with `--hang-timeout 2` must print.
pub const HANG_NEEDLES: &[&str] = &[
    "test exceeded --hang-timeout of 2s",
    "in wait_forever",
    "in test_hang",
    "1 failed, 4 passed",
];

/// Waits up to 20 s for every process whose environment holds `marker` (`NAME=value`) to end.
pub fn assert_nothing_left_with(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left running: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Processes whose environment holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_lines() {
        let t = "\
test_a.py::test_x PASSED                                          [ 10%]
test_a.py::test_p[two bad] FAILED                                 [ 20%]
test_a.py::test_s SKIPPED (could not import '...)                 [ 30%]
test_a.py::test_s XFAIL ([NOTRUN] not even run)                   [ 30%]
test_a.py::test_t SUBPASSED[even check] (i=0)                     [ 40%]
test_a.py::test_t SUBFAILED(i=1)                                  [ 40%]
test_a.py::test_long_name SUBFAILED[failing block] [ 60%]
test_a.py::test_e ERROR                                           [100%]
ERROR test_a.py::test_e - RuntimeError: x
";
        let got: Vec<_> = parse_serial_v(t)
            .into_iter()
            .map(|l| (l.nodeid, l.word))
            .collect();
        let want = [
            ("test_a.py::test_x", "PASSED"),
            ("test_a.py::test_p[two bad]", "FAILED"),
            ("test_a.py::test_s", "SKIPPED"),
            ("test_a.py::test_s", "XFAIL"),
            ("test_a.py::test_t", "SUBPASSED"),
            ("test_a.py::test_t", "SUBFAILED"),
            ("test_a.py::test_long_name", "SUBFAILED"),
            ("test_a.py::test_e", "ERROR"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dist_lines() {
        let t = "\
[gw0] [ 10%] PASSED test_a.py::test_x 
[gw1] [ 20%] FAILED test_a.py::test_p[two bad] 
[gw0] [ 20%] SUBPASSED[even check] (i='0') test_a.py::test_t 
[gw0] [ 20%] SUBFAILED(i='1') test_a.py::test_t 
[gw0] [ 25%] PASSED t.py::test_ok_2 Fatal Python error: Segmentation fault
[gw1] node down: Not properly terminated
test_a.py::test_x 
";
        let got = parse_dist_v(t);
        assert_eq!(got.len(), 5);
        assert_eq!(got[1].nodeid, "test_a.py::test_p[two bad]");
        assert_eq!(got[1].worker.as_deref(), Some("gw1"));
        assert_eq!(
            (got[2].nodeid.as_str(), got[2].word.as_str()),
            ("test_a.py::test_t", "SUBPASSED")
        );
        assert_eq!(got[3].word, "SUBFAILED");
        assert!(match_nodeid(&got[4].nodeid, "t.py::test_ok_2"));
        assert!(!match_nodeid(&got[4].nodeid, "t.py::test_ok"));
    }

    #[test]
    fn summaries() {
        let s = parse_summary("x\n= 3 failed, 10 passed, 1 skipped, 2 xfailed, 1 xpassed, 2 errors, 3 warnings in 0.12s =\n# exit").unwrap();
        assert_eq!(s.get("failed"), 3);
        assert_eq!(s.get("errors"), 2);
        assert_eq!(s.get("warnings"), 3);
        let s = parse_summary("=== 5 failed, 3 passed, 1 skipped, 7 subtests passed in 0.05s ===")
            .unwrap();
        assert_eq!(s.get("subtests passed"), 7);
        let s = parse_summary("1 error in 61.20s (0:01:01)").unwrap();
        assert_eq!(s.get("errors"), 1);
        let s = parse_summary("===== no tests ran in 0.01s =====").unwrap();
        assert!(s.counts.is_empty());
        assert_eq!(
            parse_collected("collecting ... collected 29 items / 1 deselected / 28 selected"),
            Some(28)
        );
        assert_eq!(parse_collected("collected 5 items / 2 errors"), Some(5));
        assert_eq!(
            parse_workers_items("created: 2/2 workers\n2 workers [300 items]\n"),
            Some((2, 300))
        );
    }
}
