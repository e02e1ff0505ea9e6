// Over 700 lines on purpose: one test binary per area (each file in tests/ is linked and started on its own), its cases sharing the helpers here.
//! End-to-end tests of every `--dist` mode: the real `xdist` binary on real suites generated
//! into temp dirs. Every generated test appends one JSON line (`PYTEST_XDIST_WORKER`, node id,
//! `os.getpid()`, a per-process sequence number, a timestamp and its `xdist_group`) to the file
//! named by `DIST_LOG`, so each test can check which worker ran what, and in which order.
//!
//! - every mode gives serial pytest's per-test outcomes on `examples/mixed` and `examples/basic`
//!   (`each`: per worker);
//! - mode semantics: `loadscope`/`loadfile`/`loadgroup` keep their units on one worker (groups
//!   from function, class, module marks and from a rootdir conftest's
//!   `pytest_collection_modifyitems`; node ids keep no `@group` suffix), `worksteal` never splits a
//!   group, `each` runs everything once per worker, `-n 0 --dist no` runs in-process in collection
//!   order and `-n 2 --dist no` means `load` (as in pytest-xdist), `--maxschedchunk 1`,
//!   `--no-loadscope-reorder`, `-d`, `--dist` in `addopts` (the command line wins);
//! - never more workers kept than work;
//! - duration history: written to the cache dir, the longest test starts first on the next run,
//!   `--no-durations` and `-p no:cacheprovider`, `-o cache_dir=...`;
//! - the skewed suite's second run ends near its lower bound (a generous check; the bench measures
//!   the strict figure).
//!
//! Environment: `XDIST_TEST_PYTHON` (pytest 9.2, default `<repo>/.venv/bin/python`),
//! `XDIST_TEST_TIMEOUT` (seconds per command, default 60), `XDIST_TEST_KEEP_TMP=1` keeps the
//! generated suites.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------
// Infrastructure
// ---------------------------------------------------------------------------

/// Tests share the machine through this lock: the timing check takes it exclusively, every
/// other test shares it.
static MACHINE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

fn timeout() -> Duration {
    let secs = std::env::var("XDIST_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// A directory under the system temp dir, removed on drop (unless `XDIST_TEST_KEEP_TMP` is set).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "xdist-dist-modes-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            name
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Scratch(p.canonicalize().expect("canonical scratch dir"))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("XDIST_TEST_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A command with a clean environment (no inherited pytest/xdist settings), run in `dir`.
fn clean_command(program: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("PYTEST_XDIST_AUTO_NUM_WORKERS")
        .env_remove("PYTEST_XDIST_WORKER")
        .env_remove("PYTEST_XDIST_WORKER_COUNT")
        .env_remove("PYTEST_XDIST_TESTRUNUID")
        .env_remove("XDIST_PYTHON")
        .env_remove("XDIST_PLUGINS")
        .env_remove("VIRTUAL_ENV")
        .env_remove("DIST_LOG");
    cmd
}

/// One run of the binary on a generated suite, with what its tests recorded.
struct Run {
    out: RunOutput,
    recs: Vec<Rec>,
}

impl Run {
    fn describe(&self) -> String {
        self.out.describe(8000)
    }

    /// The run ended (no hang) with exit code `code`.
    fn expect_code(&self, code: i32) -> &Run {
        assert!(
            !self.out.timed_out && self.out.code == Some(code),
            "want exit {code}\n{}",
            self.describe()
        );
        self
    }
}

/// Run `xdist --python <py> <args>` in `dir`; the suite's tests log to a fresh file.
fn xdist(dir: &Path, args: &[&str]) -> Run {
    static N: AtomicUsize = AtomicUsize::new(0);
    let log = dir.join(format!(
        "dist-log-{}.jsonl",
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&log);
    let mut cmd = clean_command(Path::new(env!("CARGO_BIN_EXE_xdist")), dir);
    cmd.env("DIST_LOG", &log)
        .arg("--python")
        .arg(test_python())
        .args(args);
    let out = run_with_timeout(&mut cmd, timeout());
    let recs = read_log(&log);
    Run { out, recs }
}

/// What one test recorded.
#[derive(Debug, Clone)]
struct Rec {
    worker: String,
    nodeid: String,
    pid: u64,
    seq: u64,
    start: f64,
    group: Option<String>,
}

fn read_log(path: &Path) -> Vec<Rec> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}"));
            Rec {
                worker: v["worker"].as_str().unwrap().to_string(),
                nodeid: v["nodeid"].as_str().unwrap().to_string(),
                pid: v["pid"].as_u64().unwrap(),
                seq: v["seq"].as_u64().unwrap(),
                start: v["start"].as_f64().unwrap(),
                group: v["group"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// Records per worker, each in the order the worker ran them. Also checks that every worker
/// name is one process (no restarts in these suites).
fn by_worker(run: &Run) -> BTreeMap<String, Vec<Rec>> {
    let mut m: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
    for r in &run.recs {
        m.entry(r.worker.clone()).or_default().push(r.clone());
    }
    for (w, recs) in m.iter_mut() {
        recs.sort_by_key(|r| r.seq);
        let pids: BTreeSet<u64> = recs.iter().map(|r| r.pid).collect();
        assert_eq!(
            pids.len(),
            1,
            "worker {w} was several processes: {pids:?}\n{}",
            run.describe()
        );
    }
    m
}

/// Every test of `ids` ran exactly once (in the whole run) and nothing else ran.
fn assert_each_once(run: &Run, ids: &[String]) {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &run.recs {
        *count.entry(r.nodeid.as_str()).or_default() += 1;
    }
    let want: BTreeMap<&str, usize> = ids.iter().map(|i| (i.as_str(), 1)).collect();
    assert_eq!(
        count,
        want,
        "want every test run exactly once\n{}",
        run.describe()
    );
}

/// Tests with the same `key` ran on one worker. Returns the number of distinct keys.
fn assert_together(run: &Run, what: &str, key: impl Fn(&Rec) -> Option<String>) -> usize {
    let mut workers: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in &run.recs {
        if let Some(k) = key(r) {
            workers
                .entry(k)
                .or_default()
                .entry(r.worker.clone())
                .or_default()
                .push(r.nodeid.clone());
        }
    }
    let split: Vec<_> = workers.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(
        split.is_empty(),
        "{what} split over workers: {split:#?}\n{}",
        run.describe()
    );
    workers.len()
}

/// More than one worker ran tests (so "kept together" is not vacuous).
fn assert_spread(run: &Run) {
    let workers = by_worker(run);
    assert!(
        workers.len() >= 2,
        "want tests on at least 2 workers, got {:?}\n{}",
        workers.keys().collect::<Vec<_>>(),
        run.describe()
    );
}

fn assert_scheduler(run: &Run, name: &str) {
    let line = format!("scheduling tests via {name}");
    assert!(
        run.out.stdout.lines().any(|l| l.trim() == line),
        "want `{line}`\n{}",
        run.describe()
    );
}

fn scope_of(nodeid: &str) -> String {
    nodeid
        .rsplit_once("::")
        .map_or(nodeid, |(s, _)| s)
        .to_string()
}

fn file_of(nodeid: &str) -> String {
    nodeid
        .split_once("::")
        .map_or(nodeid, |(f, _)| f)
        .to_string()
}

// ---------------------------------------------------------------------------
// Generated suites
// ---------------------------------------------------------------------------

/// The rootdir conftest of every generated suite: records each test in `DIST_LOG`, and adds an
/// `xdist_group("cg")` mark to every test whose name contains `_cg` (a hook of an *initial*
/// conftest, which pytest-xdist's `@group` rewriting misses).
const CONFTEST: &str = r#"import itertools
import json
import os
import time

import pytest

_seq = itertools.count()


def burn(seconds):
    """Busy-loop until this process has used `seconds` of CPU time."""
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for _ in range(1000):
            x += 1
    return x


def group_of(item):
    names = set()
    for mark in item.iter_markers("xdist_group"):
        names.add(str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")))
    return "_".join(sorted(names)) if names else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "_cg" in item.name:
            item.add_marker(pytest.mark.xdist_group("cg"))


@pytest.fixture(autouse=True)
def _dist_record(request):
    rec = {
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "-"),
        "nodeid": request.node.nodeid,
        "pid": os.getpid(),
        "seq": next(_seq),
        "start": time.time(),
        "group": group_of(request.node),
    }
    with open(os.environ["DIST_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")
    yield
"#;

const PYTEST_INI: &str = "[pytest]\nmarkers =\n    xdist_group(name): run a group on one worker\n";

/// One test function, parametrized function or class of a generated file.
enum Item {
    /// `def name(): ...` with these `xdist_group` marks.
    Func(&'static str, &'static [&'static str]),
    /// `name[0..n]`, parametrized, with marks.
    Param(&'static str, usize, &'static [&'static str]),
    /// A class with `n` methods `test_m0..`, with class-level marks (given as `name=`).
    Class(&'static str, usize, &'static [&'static str]),
}

struct PyFile {
    name: &'static str,
    module_marks: &'static [&'static str],
    items: Vec<Item>,
}

/// A generated test: its node id and the group pytest-xdist would give it.
#[derive(Debug, Clone)]
struct Expected {
    nodeid: String,
    group: Option<String>,
}

fn group_name(marks: &[&[&str]], name: &str) -> Option<String> {
    let mut names: BTreeSet<String> = marks
        .iter()
        .flat_map(|m| m.iter().map(|s| s.to_string()))
        .collect();
    if name.contains("_cg") {
        names.insert("cg".into());
    }
    if names.is_empty() {
        None
    } else {
        Some(names.into_iter().collect::<Vec<_>>().join("_"))
    }
}

/// Writes the files (names must be given in sorted order: that is pytest's collection order)
/// and returns the tests in collection order. `body` is each test's body.
fn write_suite(dir: &Path, files: &[PyFile], body: &dyn Fn(&str) -> String) -> Vec<Expected> {
    write(&dir.join("pytest.ini"), PYTEST_INI);
    write(&dir.join("conftest.py"), CONFTEST);
    let mut expected = Vec::new();
    let deco = |marks: &[&str], kw: bool| -> String {
        marks
            .iter()
            .map(|m| {
                if kw {
                    format!("@pytest.mark.xdist_group(name={m:?})\n")
                } else {
                    format!("@pytest.mark.xdist_group({m:?})\n")
                }
            })
            .collect()
    };
    for f in files {
        let mut py = String::from("import time\n\nimport pytest\n\nfrom conftest import burn\n\n");
        if !f.module_marks.is_empty() {
            let marks: Vec<String> = f
                .module_marks
                .iter()
                .map(|m| format!("pytest.mark.xdist_group({m:?})"))
                .collect();
            py.push_str(&format!("pytestmark = [{}]\n\n", marks.join(", ")));
        }
        for item in &f.items {
            match item {
                Item::Func(name, marks) => {
                    py.push_str(&format!(
                        "\n{}def {name}():\n    {}\n\n",
                        deco(marks, false),
                        body(name)
                    ));
                    expected.push(Expected {
                        nodeid: format!("{}::{name}", f.name),
                        group: group_name(&[f.module_marks, marks], name),
                    });
                }
                Item::Param(name, n, marks) => {
                    py.push_str(&format!(
                        "\n{}@pytest.mark.parametrize(\"i\", range({n}))\ndef {name}(i):\n    {}\n\n",
                        deco(marks, false),
                        body(name)
                    ));
                    for i in 0..*n {
                        expected.push(Expected {
                            nodeid: format!("{}::{name}[{i}]", f.name),
                            group: group_name(&[f.module_marks, marks], name),
                        });
                    }
                }
                Item::Class(name, n, marks) => {
                    py.push_str(&format!("\n{}class {name}:\n", deco(marks, true)));
                    for i in 0..*n {
                        let m = format!("test_m{i}");
                        py.push_str(&format!("    def {m}(self):\n        {}\n\n", body(&m)));
                        expected.push(Expected {
                            nodeid: format!("{}::{name}::{m}", f.name),
                            group: group_name(&[f.module_marks, marks], &m),
                        });
                    }
                }
            }
        }
        write(&dir.join(f.name), &py);
    }
    expected
}

/// The mode suite: 65 tests of 5 ms in 8 files of different sizes (largest: `test_d.py`), with
/// module-level tests and classes, and `xdist_group` marks at every level:
/// `gfn` (function marks, two files), `gcls` (class mark), `gmod` (module mark), `g1_g2` (two
/// marks, two files, either order) and `cg` (added by the conftest hook, three files).
fn write_modes_suite(dir: &Path) -> Vec<Expected> {
    use Item::*;
    let files = vec![
        PyFile {
            name: "test_a.py",
            module_marks: &[],
            items: vec![
                Func("test_f0", &[]),
                Func("test_f1", &[]),
                Func("test_f2", &[]),
                Func("test_a_cg", &[]),
                Class("TestA", 4, &[]),
            ],
        },
        PyFile {
            name: "test_b.py",
            module_marks: &[],
            items: vec![
                Param("test_p", 4, &[]),
                Class("TestB1", 3, &[]),
                Class("TestB2", 3, &[]),
            ],
        },
        PyFile {
            name: "test_c.py",
            module_marks: &[],
            items: vec![Param("test_p", 6, &[]), Class("TestC", 6, &[])],
        },
        PyFile {
            name: "test_d.py",
            module_marks: &[],
            items: vec![
                Param("test_p", 6, &[]),
                Class("TestD1", 4, &[]),
                Class("TestD2", 4, &[]),
            ],
        },
        PyFile {
            name: "test_g_cls.py",
            module_marks: &[],
            items: vec![Class("TestGrouped", 4, &["gcls"]), Func("test_free", &[])],
        },
        PyFile {
            name: "test_g_fn.py",
            module_marks: &[],
            items: vec![
                Param("test_gfn", 4, &["gfn"]),
                Func("test_two", &["g1", "g2"]),
                Func("test_plain", &[]),
                Func("test_fn_cg", &[]),
            ],
        },
        PyFile {
            name: "test_g_mod.py",
            module_marks: &["gmod"],
            items: vec![Param("test_mod", 5, &[])],
        },
        PyFile {
            name: "test_h.py",
            module_marks: &[],
            items: vec![
                Func("test_h_cg", &[]),
                Func("test_two_other_order", &["g2", "g1"]),
                Func("test_gfn_elsewhere", &["gfn"]),
                Func("test_h_plain", &[]),
            ],
        },
    ];
    write_suite(dir, &files, &|_| "time.sleep(0.005)".to_string())
}

fn ids(expected: &[Expected]) -> Vec<String> {
    expected.iter().map(|e| e.nodeid.clone()).collect()
}

/// Checks a group-keeping run: every group on one worker, the recorded groups are the expected
/// ones, and all five groups of the mode suite were seen.
fn assert_groups_together(run: &Run, expected: &[Expected]) {
    let want: BTreeMap<&str, Option<&str>> = expected
        .iter()
        .map(|e| (e.nodeid.as_str(), e.group.as_deref()))
        .collect();
    for r in &run.recs {
        assert_eq!(
            want.get(r.nodeid.as_str()).copied().flatten(),
            r.group.as_deref(),
            "group of {} (the suite's conftest and this test disagree)",
            r.nodeid
        );
    }
    let n = assert_together(run, "xdist_group", |r| r.group.clone());
    assert_eq!(
        n,
        5,
        "want groups gfn, gcls, gmod, g1_g2, cg\n{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------
// Same outcomes as serial pytest on the example suites
// ---------------------------------------------------------------------------

const MODES: &[&str] = &[
    "load",
    "each",
    "loadscope",
    "loadfile",
    "loadgroup",
    "worksteal",
    "no",
];

/// Runs `examples/<suite>` serially and under every mode; returns the problems found.
fn compare_modes_on_example(suite: &str) -> Vec<String> {
    let dir = examples_dir().join(suite);
    let py = test_python();
    let mut cmd = clean_command(&py, &dir);
    cmd.args([
        "-m",
        "pytest",
        "-v",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
    ]);
    let serial = run_with_timeout(&mut cmd, timeout());
    let serial_set = outcome_multiset(&parse_serial_v(&serial.stdout));
    assert!(
        !serial.timed_out && serial.code.is_some() && serial_set.len() > 5,
        "serial pytest on {suite} (wrong interpreter? run dev/venv.sh)\n{}",
        serial.describe(4000)
    );
    let mut problems = Vec::new();
    for mode in MODES {
        let mut cmd = clean_command(Path::new(env!("CARGO_BIN_EXE_xdist")), &dir);
        cmd.arg("--python").arg(&py).args([
            "-n",
            "2",
            "--dist",
            mode,
            "-v",
            "-p",
            "no:cacheprovider",
        ]);
        let dist = run_with_timeout(&mut cmd, timeout());
        let lines = parse_dist_v(&dist.stdout);
        let mut p = Vec::new();
        if dist.timed_out || dist.code != serial.code {
            p.push(format!("exit {:?}, serial {:?}", dist.code, serial.code));
        }
        if *mode == "each" {
            p.extend(each_worker_ran_all(&serial_set, lines));
        } else {
            p.extend(same_as_serial(&serial, &serial_set, &dist, &lines));
        }
        if !p.is_empty() {
            problems.push(format!(
                "[{suite} --dist {mode}]\n- {}\n{}",
                p.join("\n- "),
                dist.describe(6000)
            ));
        }
    }
    problems
}

/// `--dist each`: two workers, each with serial pytest's outcomes.
fn each_worker_ran_all(
    serial_set: &BTreeMap<(String, String), usize>,
    lines: Vec<OutcomeLine>,
) -> Vec<String> {
    let mut p = Vec::new();
    let mut per: BTreeMap<String, Vec<OutcomeLine>> = BTreeMap::new();
    for l in lines {
        per.entry(l.worker.clone().unwrap_or_default())
            .or_default()
            .push(l);
    }
    if per.len() != 2 {
        p.push(format!(
            "want outcome lines of 2 workers, got {:?}",
            per.keys()
        ));
    }
    for (w, l) in &per {
        let diff = multiset_diff(serial_set, &outcome_multiset(l));
        if !diff.is_empty() {
            p.push(format!("worker {w}: outcomes differ:\n{diff}"));
        }
    }
    p
}

/// Every other mode: serial pytest's outcomes and summary counts.
fn same_as_serial(
    serial: &RunOutput,
    serial_set: &BTreeMap<(String, String), usize>,
    dist: &RunOutput,
    lines: &[OutcomeLine],
) -> Vec<String> {
    let mut p = Vec::new();
    let diff = multiset_diff(serial_set, &outcome_multiset(lines));
    if !diff.is_empty() {
        p.push(format!("outcomes differ:\n{diff}"));
    }
    match (parse_summary(&serial.stdout), parse_summary(&dist.stdout)) {
        (Some(s), Some(d)) if s.counts == d.counts => {}
        (s, d) => p.push(format!(
            "summary {:?}, serial {:?}",
            d.map(|d| d.line),
            s.map(|s| s.line)
        )),
    }
    p
}

#[test]
fn every_mode_matches_serial_on_examples_mixed() {
    let _g = shared();
    let problems = compare_modes_on_example("mixed");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_mode_matches_serial_on_examples_basic() {
    let _g = shared();
    let problems = compare_modes_on_example("basic");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

// ---------------------------------------------------------------------------
// Mode semantics on the generated mode suite
// ---------------------------------------------------------------------------

#[test]
fn scope_modes_keep_their_units_on_one_worker() {
    let _g = shared();
    let s = Scratch::new("scopes");
    let expected = write_modes_suite(s.path());
    let all = ids(&expected);

    let run = xdist(
        s.path(),
        &[
            "-n",
            "2",
            "--dist",
            "loadscope",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
    );
    run.expect_code(0);
    assert_scheduler(&run, "LoadScopeScheduling");
    assert_each_once(&run, &all);
    assert_spread(&run);
    let scopes = assert_together(&run, "scope", |r| Some(scope_of(&r.nodeid)));
    assert!(scopes > 10, "{scopes} scopes");

    let run = xdist(
        s.path(),
        &[
            "-n",
            "2",
            "--dist",
            "loadfile",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
    );
    run.expect_code(0);
    assert_scheduler(&run, "LoadFileScheduling");
    assert_each_once(&run, &all);
    assert_spread(&run);
    assert_eq!(
        assert_together(&run, "file", |r| Some(file_of(&r.nodeid))),
        8
    );
}

#[test]
fn loadgroup_and_worksteal_keep_groups_on_one_worker() {
    let _g = shared();
    let s = Scratch::new("groups");
    let expected = write_modes_suite(s.path());
    let all = ids(&expected);

    let run = xdist(
        s.path(),
        &[
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
    );
    run.expect_code(0);
    assert_scheduler(&run, "LoadGroupScheduling");
    assert_each_once(&run, &all);
    assert_spread(&run);
    assert_groups_together(&run, &expected);
    // Node ids stay pytest's own: no `test@group` rewriting, in the tests or in `-v` lines.
    assert!(run.recs.iter().all(|r| !r.nodeid.contains('@')));
    let lines = parse_dist_v(&run.out.stdout);
    let shown: BTreeSet<String> = lines.iter().map(|l| l.nodeid.clone()).collect();
    assert_eq!(
        shown,
        all.iter().cloned().collect::<BTreeSet<_>>(),
        "-v lines must show the plain node ids\n{}",
        run.describe()
    );
    assert!(
        !run.out.stdout.contains('@'),
        "`@` in the output\n{}",
        run.describe()
    );

    let run = xdist(
        s.path(),
        &[
            "-n",
            "2",
            "--dist",
            "worksteal",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
    );
    run.expect_code(0);
    assert_scheduler(&run, "WorkStealingScheduling");
    assert_each_once(&run, &all);
    assert_spread(&run);
    assert_groups_together(&run, &expected);
}

#[test]
fn each_runs_every_test_once_on_every_worker() {
    let _g = shared();
    let s = Scratch::new("each");
    let expected = write_modes_suite(s.path());
    let all: BTreeSet<String> = ids(&expected).into_iter().collect();
    let run = xdist(
        s.path(),
        &["-n", "2", "--dist", "each", "-v", "-p", "no:cacheprovider"],
    );
    run.expect_code(0);
    assert_scheduler(&run, "EachScheduling");
    let per = by_worker(&run);
    assert_eq!(
        per.keys().cloned().collect::<Vec<_>>(),
        vec!["gw0".to_string(), "gw1".to_string()],
        "{}",
        run.describe()
    );
    for (w, recs) in &per {
        let mut seen = BTreeSet::new();
        for r in recs {
            assert!(seen.insert(r.nodeid.clone()), "{w} ran {} twice", r.nodeid);
        }
        assert_eq!(seen, all, "worker {w} did not run every test");
    }
    let summary = parse_summary(&run.out.stdout).expect("summary");
    assert_eq!(
        summary.get("passed"),
        2 * all.len() as u64,
        "{}",
        summary.line
    );
}

#[test]
fn dist_no_runs_in_collection_order() {
    let _g = shared();
    let s = Scratch::new("no");
    let expected = write_modes_suite(s.path());
    let all = ids(&expected);

    // `-n 0`: plain pytest in one process, in collection order (pytest-xdist: no DSession).
    let run = xdist(
        s.path(),
        &["-n", "0", "--dist", "no", "-p", "no:cacheprovider"],
    );
    run.expect_code(0);
    let per = by_worker(&run);
    assert_eq!(
        per.keys().collect::<Vec<_>>(),
        vec!["-"],
        "not in-process\n{}",
        run.describe()
    );
    let order: Vec<String> = per["-"].iter().map(|r| r.nodeid.clone()).collect();
    assert_eq!(order, all, "not in collection order");

    // With workers, `no` becomes `load` (pytest-xdist: `-n 2 --dist no` is load).
    let run = xdist(
        s.path(),
        &["-n", "2", "--dist", "no", "-v", "-p", "no:cacheprovider"],
    );
    run.expect_code(0);
    assert_scheduler(&run, "LoadScheduling");
    assert_each_once(&run, &all);
}

#[test]
fn load_with_maxschedchunk_one_and_dash_d() {
    let _g = shared();
    let s = Scratch::new("load");
    let expected = write_modes_suite(s.path());
    let all = ids(&expected);

    let run = xdist(
        s.path(),
        &[
            "-n",
            "2",
            "--dist",
            "load",
            "--maxschedchunk",
            "1",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
    );
    run.expect_code(0);
    assert_scheduler(&run, "LoadScheduling");
    assert_each_once(&run, &all);
    assert_spread(&run);
    let summary = parse_summary(&run.out.stdout).expect("summary");
    assert_eq!(summary.get("passed"), all.len() as u64);

    // `-d` is `--dist load`.
    let run = xdist(s.path(), &["-n", "2", "-d", "-v", "-p", "no:cacheprovider"]);
    run.expect_code(0);
    assert_scheduler(&run, "LoadScheduling");
    assert_each_once(&run, &all);
    assert_spread(&run);
}

#[test]
fn no_loadscope_reorder_keeps_file_order_per_worker() {
    let _g = shared();
    let s = Scratch::new("reorder");
    let expected = write_modes_suite(s.path());
    let all = ids(&expected);
    let files: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for id in &all {
            let f = file_of(id);
            if v.last() != Some(&f) {
                v.push(f);
            }
        }
        v
    };
    let rank = |f: &str| files.iter().position(|x| x == f).unwrap();

    let run = xdist(
        s.path(),
        &[
            "-n",
            "2",
            "--dist",
            "loadfile",
            "--no-loadscope-reorder",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
    );
    run.expect_code(0);
    assert_each_once(&run, &all);
    assert_spread(&run);
    let per = by_worker(&run);
    for (w, recs) in &per {
        let ranks: Vec<usize> = recs.iter().map(|r| rank(&file_of(&r.nodeid))).collect();
        assert!(
            ranks.windows(2).all(|p| p[0] <= p[1]),
            "{w} ran files out of collection order: {:?}",
            recs.iter().map(|r| &r.nodeid).collect::<Vec<_>>()
        );
    }
    let firsts: BTreeSet<String> = per.values().map(|r| file_of(&r[0].nodeid)).collect();
    assert_eq!(
        firsts,
        ["test_a.py", "test_b.py"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "without reorder the first two files start first"
    );

    // The default (`--loadscope-reorder`) starts the largest file first: the check above is
    // not vacuous.
    let run = xdist(
        s.path(),
        &[
            "-n",
            "2",
            "--dist",
            "loadfile",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
    );
    run.expect_code(0);
    let per = by_worker(&run);
    assert!(
        per.values().any(|r| file_of(&r[0].nodeid) == "test_d.py"),
        "with reorder the largest file (test_d.py) starts first\n{}",
        run.describe()
    );
}

#[test]
fn dist_from_addopts_and_command_line_wins() {
    let _g = shared();
    let s = Scratch::new("addopts");
    let expected = write_modes_suite(s.path());
    let all = ids(&expected);
    write(
        &s.path().join("pytest.ini"),
        &format!("{PYTEST_INI}addopts = --dist loadfile -p no:cacheprovider\n"),
    );

    let run = xdist(s.path(), &["-n", "2", "-v"]);
    run.expect_code(0);
    assert_scheduler(&run, "LoadFileScheduling");
    assert_each_once(&run, &all);
    assert_spread(&run);
    assert_together(&run, "file", |r| Some(file_of(&r.nodeid)));

    let run = xdist(s.path(), &["-n", "2", "--dist", "each", "-v"]);
    run.expect_code(0);
    assert_scheduler(&run, "EachScheduling");
    for (w, recs) in by_worker(&run) {
        assert_eq!(recs.len(), all.len(), "{w} under each\n{}", run.describe());
    }
}

// ---------------------------------------------------------------------------
// Workers and work
// ---------------------------------------------------------------------------

#[test]
fn never_more_workers_kept_than_work() {
    let _g = shared();
    let s = Scratch::new("two");
    write(&s.path().join("pytest.ini"), PYTEST_INI);
    write(&s.path().join("conftest.py"), CONFTEST);
    write(
        &s.path().join("test_two.py"),
        "import time\n\ndef test_one():\n    time.sleep(0.05)\n\ndef test_two():\n    time.sleep(0.05)\n",
    );
    for mode in ["load", "loadfile", "worksteal"] {
        let run = xdist(
            s.path(),
            &["-n", "4", "--dist", mode, "-v", "-p", "no:cacheprovider"],
        );
        run.expect_code(0);
        let per = by_worker(&run);
        assert_eq!(run.recs.len(), 2, "--dist {mode}\n{}", run.describe());
        assert!(
            per.len() <= 2,
            "--dist {mode}: {} workers ran tests",
            per.len()
        );
    }
    // With the cache, a second identical run does not even start the surplus workers.
    for _ in 0..2 {
        let run = xdist(s.path(), &["-n", "4", "-v"]);
        run.expect_code(0);
        assert!(by_worker(&run).len() <= 2);
    }
    let run = xdist(s.path(), &["-n", "4", "-v"]);
    run.expect_code(0);
    assert!(
        parse_workers_items(&run.out.stdout).is_some_and(|(w, _)| w <= 2),
        "want at most 2 workers started on a 2-test suite with history\n{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------
// Duration history
// ---------------------------------------------------------------------------

/// 20 quick tests (5 ms CPU) then, last in collection order, two long ones (0.6 s CPU).
fn write_skewed_suite(dir: &Path) -> Vec<Expected> {
    use Item::*;
    let files = vec![
        PyFile {
            name: "test_quick.py",
            module_marks: &[],
            items: vec![Param("test_q", 20, &[])],
        },
        PyFile {
            name: "test_zz_long.py",
            module_marks: &[],
            items: vec![Func("test_long_0", &[]), Func("test_long_1", &[])],
        },
    ];
    write_suite(dir, &files, &|name| {
        if name.starts_with("test_long") {
            "burn(0.6)".to_string()
        } else {
            "burn(0.005)".to_string()
        }
    })
}

fn history(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no duration history at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("duration history is a JSON object {nodeid: seconds}")
}

/// The first test each worker started.
fn first_per_worker(run: &Run) -> BTreeMap<String, String> {
    by_worker(run)
        .into_iter()
        .map(|(w, r)| (w, r[0].nodeid.clone()))
        .collect()
}

#[test]
fn duration_history_starts_the_longest_tests_first() {
    let _g = shared();
    let s = Scratch::new("history");
    let expected = write_skewed_suite(s.path());
    let all = ids(&expected);
    let cache = s.path().join(".pytest_cache/v/xdist/durations");
    let args = ["-n", "2", "--dist", "load", "-v"];

    // First run: no history, collection order (the long tests come last).
    let run = xdist(s.path(), &args);
    assert_no_long_test_first(&run, &all, "no history yet");
    let longest = longest_by_history(&cache, &all);

    // Second run: the longest test (known from the first run) starts first on some worker,
    // and the two long tests are spread over both workers.
    let run = xdist(s.path(), &args);
    assert_longest_first(&run, &all, &longest, "load with history");
    // By the clock too: it started before every quick test of its worker.
    let first = run.recs.iter().find(|r| r.nodeid == longest).unwrap();
    let quick_before: Vec<&str> = run
        .recs
        .iter()
        .filter(|r| r.worker == first.worker && r.start < first.start)
        .map(|r| r.nodeid.as_str())
        .collect();
    assert!(
        quick_before.is_empty(),
        "{longest} started after {quick_before:?} on {}",
        first.worker
    );
    let long_workers: BTreeSet<&str> = run
        .recs
        .iter()
        .filter(|r| r.nodeid.contains("long"))
        .map(|r| r.worker.as_str())
        .collect();
    assert_eq!(
        long_workers.len(),
        2,
        "the two long tests should run on different workers\n{}",
        run.describe()
    );

    // `worksteal` uses the history too.
    let run = xdist(s.path(), &["-n", "2", "--dist", "worksteal", "-v"]);
    assert_longest_first(&run, &all, &longest, "worksteal with history");

    // `--no-durations`: history ignored, collection order again.
    let run = xdist(
        s.path(),
        &["-n", "2", "--dist", "load", "-v", "--no-durations"],
    );
    assert_no_long_test_first(&run, &all, "--no-durations");
}

/// The run passed, ran every test once, and no worker started with a long test.
fn assert_no_long_test_first(run: &Run, all: &[String], what: &str) {
    run.expect_code(0);
    assert_each_once(run, all);
    let firsts = first_per_worker(run);
    assert!(
        firsts.values().all(|t| !t.contains("long")),
        "{what}, yet a long test started first: {firsts:?}"
    );
}

/// The run passed, ran every test once, and `longest` started first on some worker.
fn assert_longest_first(run: &Run, all: &[String], longest: &str, what: &str) {
    run.expect_code(0);
    assert_each_once(run, all);
    let firsts = first_per_worker(run);
    assert!(
        firsts.values().any(|t| t == longest),
        "{what}: {longest} should start first on some worker: {firsts:?}\n{}",
        run.describe()
    );
}

/// The history holds every test; its longest is one of the long tests.
fn longest_by_history(cache: &Path, all: &[String]) -> String {
    let h = history(cache);
    assert_eq!(
        h.keys().cloned().collect::<BTreeSet<_>>(),
        all.iter().cloned().collect::<BTreeSet<_>>(),
        "the history must hold every node id"
    );
    let longest = h
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(k, _)| k.clone())
        .unwrap();
    assert!(
        longest.contains("long"),
        "longest by history: {longest} ({h:?})"
    );
    longest
}

#[test]
fn history_honours_cacheprovider_and_cache_dir() {
    let _g = shared();
    let s = Scratch::new("nocache");
    let expected = write_skewed_suite(s.path());
    let all = ids(&expected);
    // Keep it quick: only the quick tests.
    let run = xdist(
        s.path(),
        &["-n", "2", "-p", "no:cacheprovider", "test_quick.py"],
    );
    run.expect_code(0);
    assert!(
        !s.path().join(".pytest_cache").exists(),
        "-p no:cacheprovider, yet .pytest_cache was written"
    );

    let run = xdist(
        s.path(),
        &["-n", "2", "-o", "cache_dir=my_cache", "test_quick.py"],
    );
    run.expect_code(0);
    assert!(!s.path().join(".pytest_cache").exists());
    let h = history(&s.path().join("my_cache/v/xdist/durations"));
    let quick: BTreeSet<String> = all
        .iter()
        .filter(|i| i.contains("quick"))
        .cloned()
        .collect();
    assert_eq!(h.keys().cloned().collect::<BTreeSet<_>>(), quick);
}

/// The acceptance figure, as a check with a generous margin (the strict 1.10x figure is the
/// bench's job): the skewed suite's second run, with history, ends within 1.5x of
/// max(total / 2, longest) plus 1 s of startup. Runs alone (exclusive lock).
#[test]
fn skewed_second_run_is_near_the_lower_bound() {
    let _g = exclusive();
    let s = Scratch::new("bound");
    let expected = write_skewed_suite(s.path());
    let all = ids(&expected);
    let args = ["-n", "2", "--dist", "load", "-q"];
    xdist(s.path(), &args).expect_code(0);
    let run = xdist(s.path(), &args);
    run.expect_code(0);
    assert_each_once(&run, &all);
    // This run's own measurements (the history is updated with them).
    let h = history(&s.path().join(".pytest_cache/v/xdist/durations"));
    let total: f64 = h.values().sum();
    let longest = h.values().copied().fold(0.0, f64::max);
    let lower = (total / 2.0).max(longest);
    let wall = run.out.elapsed.as_secs_f64();
    let limit = 1.5 * (lower + 1.0);
    let mut busy: BTreeMap<String, f64> = BTreeMap::new();
    for r in &run.recs {
        *busy.entry(r.worker.clone()).or_default() += h.get(&r.nodeid).copied().unwrap_or(0.0);
    }
    eprintln!(
        "skewed -n 2, second run: wall {wall:.2}s, lower bound {lower:.2}s \
         (total {total:.2}s, longest {longest:.2}s), busy per worker {busy:?}"
    );
    assert!(
        wall <= limit,
        "wall {wall:.2}s > 1.5 x ({lower:.2}s + 1s) = {limit:.2}s; busy per worker {busy:?}\n{}",
        run.describe()
    );
    // Per-worker work (no startup in it) must be near the bound too.
    let makespan = busy.values().copied().fold(0.0, f64::max);
    assert!(
        makespan <= 1.25 * lower + 0.05,
        "per-worker work {busy:?}: max {makespan:.2}s vs lower bound {lower:.2}s"
    );
}
