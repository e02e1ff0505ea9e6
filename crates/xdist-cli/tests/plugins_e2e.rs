// Over 700 lines on purpose: one test binary per area (each file in tests/ is linked and started on its own), its cases sharing the helpers here.
//! Plugins in real runs: the `xdist` binary loads the real `.so` files built from `plugins/`
//! (and two fixture libraries from `tests/fixtures/`) into runs of small temporary suites.
//!
//! The first-party plugins are built with `cargo build -p <plugin>` into the target directory
//! of this test binary; the fixtures (`e2e-probe`: a hook log, a `workerinput` key and a panic
//! on request; `plain-cdylib`: a library that is not a plugin) into
//! `<target>/cli-plugin-fixtures`. Every run gets private copies of the libraries, an empty
//! `XDG_DATA_HOME` (no user plugins) and no `XDIST_PLUGINS`.
//!
//! Needs the test venv (`dev/venv.sh`), like the other integration tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Building the libraries
// ---------------------------------------------------------------------------

/// `<target>/<profile>` of this test binary (`<target>/<profile>/deps/<test-exe>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    profile_dir().parent().expect("target dir").to_path_buf()
}

fn profile_args() -> Vec<String> {
    match profile_dir().file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => vec![],
        Some("release") => vec!["--release".into()],
        Some(other) => vec!["--profile".into(), other.into()],
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Cargo sets these for the test process; they must not leak into the nested build.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    cmd
}

fn run_cargo(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {what}: {e}"));
    assert!(
        out.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

fn lib_name(crate_name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// The four first-party plugins, built (no-op when up to date) in this test's target dir.
fn first_party_dir() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let _g = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut cmd = cargo();
        cmd.current_dir(repo_root())
            .env("CARGO_TARGET_DIR", target_dir())
            .args(["build", "--quiet"])
            .args(profile_args());
        for p in [
            "priority-scheduler",
            "crash-retry",
            "node-lifecycle",
            "auto-workers",
        ] {
            cmd.args(["-p", p]);
        }
        run_cargo(cmd, "the first-party plugins");
        profile_dir()
    })
}

/// The fixture libraries of `tests/fixtures/`, built into `<target>/cli-plugin-fixtures`.
fn fixtures_dir() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let _g = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let target = target_dir().join("cli-plugin-fixtures");
        let mut cmd = cargo();
        cmd.env("CARGO_TARGET_DIR", &target)
            .args(["build", "--quiet", "--workspace", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/Cargo.toml"));
        run_cargo(cmd, "the test fixtures in tests/fixtures");
        target.join("debug")
    })
}

// ---------------------------------------------------------------------------
// Temporary directories and runs
// ---------------------------------------------------------------------------

/// A temporary directory, removed on drop unless the test failed.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xdist-plugins-e2e-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Tmp(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&p, text).expect("write file");
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Copy `src` into `dir` (as `name`, default its file name): each test uses its own copy.
fn copy_lib(src: &Path, dir: &Path, name: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create dir");
    let dst = dir.join(name.map_or_else(|| src.file_name().unwrap().to_owned(), Into::into));
    std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    dst
}

/// A private copy of a first-party plugin (`crash-retry`, ...) in `<tmp>/libs`.
fn plugin(tmp: &Tmp, crate_name: &str) -> PathBuf {
    copy_lib(
        &first_party_dir().join(lib_name(crate_name)),
        &tmp.join("libs"),
        None,
    )
}

/// A private copy of a fixture library (`e2e-probe`, `plain-cdylib`) in `<tmp>/libs`.
fn fixture(tmp: &Tmp, crate_name: &str) -> PathBuf {
    copy_lib(
        &fixtures_dir().join(lib_name(crate_name)),
        &tmp.join("libs"),
        None,
    )
}

fn timeout() -> Duration {
    let secs = std::env::var("XDIST_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// `xdist ARGS` in `cwd`, isolated from the user's plugins and pytest environment.
fn xdist_in(cwd: &Path, args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
    let data_home = cwd.join(".xdg-data");
    cmd.current_dir(cwd)
        .env("XDG_DATA_HOME", &data_home)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("XDIST_PLUGINS")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("VIRTUAL_ENV")
        .env_remove("RUST_BACKTRACE")
        .args(args);
    run_with_timeout(&mut cmd, timeout())
}

/// `xdist --python <venv> ARGS -p no:cacheprovider` in the suite directory.
fn run_suite(suite: &Path, args: &[&str]) -> RunOutput {
    let python = test_python();
    let mut all = vec!["--python", python.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-p", "no:cacheprovider"]);
    xdist_in(suite, &all)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A suite directory `<tmp>/suite` with a `pytest.ini` (so the rootdir is the suite) and files.
fn suite(tmp: &Tmp, files: &[(&str, &str)]) -> PathBuf {
    tmp.write("suite/pytest.ini", "[pytest]\n");
    for (name, text) in files {
        tmp.write(&format!("suite/{name}"), text);
    }
    tmp.join("suite")
}

const FOUR_TESTS: &str = "\
def test_a(): pass
def test_b(): pass
def test_c(): pass
def test_d(): pass
";

/// The run ended normally with `code` (no signal, no timeout).
fn assert_exit(out: &RunOutput, code: i32) {
    assert!(!out.timed_out, "timed out:\n{}", out.describe(6000));
    assert_eq!(out.code, Some(code), "exit code:\n{}", out.describe(6000));
}

/// stderr is exactly one line, `xdist: error: ...` containing every `needle`.
fn assert_one_error_line(out: &RunOutput, needles: &[&str]) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "want exactly one stderr line:\n{}",
        out.describe(6000)
    );
    assert!(
        lines[0].starts_with("xdist: error: "),
        "stderr line must start with `xdist: error: `:\n{}",
        out.describe(6000)
    );
    for n in needles {
        assert!(
            lines[0].contains(n),
            "stderr line must mention {n:?}:\n{}",
            out.describe(6000)
        );
    }
}

fn outcomes(out: &RunOutput, nodeid: &str) -> Vec<String> {
    parse_dist_v(&out.stdout)
        .into_iter()
        .filter(|l| match_nodeid(&l.nodeid, nodeid))
        .map(|l| l.word)
        .collect()
}

fn summary(out: &RunOutput) -> Summary {
    parse_summary(&out.stdout).unwrap_or_else(|| panic!("no summary line:\n{}", out.describe(6000)))
}

// ---------------------------------------------------------------------------
// node-lifecycle and the order of the node hooks
// ---------------------------------------------------------------------------

fn read_json(path: &Path, out: &RunOutput) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\n{}",
            path.display(),
            out.describe(6000)
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// Check node-lifecycle's JSON: every hook fired for gw0 and gw1, in order.
fn check_lifecycle_json(json: &Value, n_tests: u64, out: &RunOutput) {
    let ctx = || format!("{json:#}\n{}", out.describe(3000));
    assert_eq!(json["specs"], 2, "setupnodes saw 2 specs: {}", ctx());
    assert_eq!(json["exitstatus"], 0, "{}", ctx());
    let workers = json["workers"].as_array().expect("workers array");
    let ids: Vec<&str> = workers.iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gw0", "gw1"], "{}", ctx());
    for w in workers {
        assert_eq!(w["spec"], "popen", "{}", ctx());
        let times: Vec<f64> = [
            "newgateway",
            "configure_node",
            "ready",
            "collection_finished",
            "down",
        ]
        .iter()
        .map(|k| {
            w[k].as_f64()
                .unwrap_or_else(|| panic!("{} {k} not recorded: {}", w["id"], ctx()))
        })
        .collect();
        // Times count from setupnodes: all of them come after it.
        assert!(times[0] >= 0.0, "{}", ctx());
        assert!(
            times.windows(2).all(|p| p[0] <= p[1]),
            "{}: hooks out of order {times:?}: {}",
            w["id"],
            ctx()
        );
        assert_eq!(w["collected"], n_tests, "{}", ctx());
        assert!(w["error"].is_null(), "{}", ctx());
    }
}

#[test]
fn node_lifecycle_records_every_hook_per_worker_in_order() {
    let tmp = Tmp::new("lifecycle");
    let lib = plugin(&tmp, "node-lifecycle");
    let probe = fixture(&tmp, "e2e-probe");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let json_path = tmp.join("l.json");
    let log_path = tmp.join("hooks.jsonl");
    let out = run_suite(
        &dir,
        &[
            "-n",
            "2",
            "--plugin",
            s(&lib),
            "--plugin-opt",
            &format!("node-lifecycle.output={}", s(&json_path)),
            "--plugin",
            s(&probe),
            "--plugin-opt",
            &format!("e2e-probe.log={}", s(&log_path)),
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(summary(&out).get("passed"), 4, "{}", out.describe(3000));
    check_lifecycle_json(&read_json(&json_path, &out), 4, &out);
    // The summary text of sessionfinish.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("xdist: node-lifecycle:")),
        "no `xdist: node-lifecycle:` summary line:\n{}",
        out.describe(6000)
    );
    assert!(out.stdout.contains("written to"), "{}", out.describe(6000));

    // The probe's log gives the exact call sequence in the controller.
    let log = std::fs::read_to_string(&log_path).expect("hook log");
    let calls: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ctx = || format!("{log}\n{}", out.describe(3000));
    let hooks: Vec<&str> = calls.iter().map(|c| c["hook"].as_str().unwrap()).collect();
    assert_eq!(hooks.first(), Some(&"setupnodes"), "{}", ctx());
    assert_eq!(calls[0]["specs"], serde_json::json!(["popen", "popen"]));
    assert_eq!(hooks.last(), Some(&"sessionfinish"), "{}", ctx());
    assert_eq!(calls.last().unwrap()["exitstatus"], 0);
    let order = [
        "newgateway",
        "configure_node",
        "testnodeready",
        "node_collection_finished",
        "testnodedown",
    ];
    for gw in ["gw0", "gw1"] {
        let seq: Vec<(usize, &str)> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c["worker"] == gw)
            .map(|(i, c)| (i, c["hook"].as_str().unwrap()))
            .collect();
        let names: Vec<&str> = seq.iter().map(|(_, h)| *h).collect();
        assert_eq!(names, order, "{gw}: {}", ctx());
        for (i, _) in &seq {
            assert_eq!(calls[*i]["spec"], "popen", "{}", ctx());
        }
        let cfg = &calls[seq[1].0];
        assert_eq!(cfg["workerinput_workerid"], gw, "{}", ctx());
        assert_eq!(calls[seq[2].0]["has_workerinfo"], true, "{}", ctx());
        let ids = calls[seq[3].0]["ids"].as_array().unwrap();
        assert_eq!(ids.len(), 4, "{}", ctx());
        assert_eq!(ids[0], "test_four.py::test_a");
        assert!(calls[seq[4].0]["error"].is_null(), "{}", ctx());
    }
}

// ---------------------------------------------------------------------------
// configure_node → the worker's config.workerinput
// ---------------------------------------------------------------------------

const WORKERINPUT_TEST: &str = "\
def test_from_plugin_0(request):
    assert request.config.workerinput[\"from_plugin\"] == \"yes\"
    assert request.config.workerinput[\"workerid\"].startswith(\"gw\")

def test_from_plugin_1(request):
    assert request.config.workerinput[\"from_plugin\"] == \"yes\"
";

#[test]
fn configure_node_keys_reach_the_workers_workerinput() {
    let tmp = Tmp::new("workerinput");
    let probe = fixture(&tmp, "e2e-probe");
    let dir = suite(&tmp, &[("test_wi.py", WORKERINPUT_TEST)]);
    let out = run_suite(&dir, &["-n", "2", "-v", "--plugin", s(&probe)]);
    assert_exit(&out, 0);
    assert_eq!(summary(&out).get("passed"), 2, "{}", out.describe(3000));

    // Control: without the plugin the key is missing.
    let out = run_suite(&dir, &["-n", "2"]);
    assert_exit(&out, 1);
    assert_eq!(summary(&out).get("failed"), 2, "{}", out.describe(3000));
}

#[test]
fn xdist_plugins_env_var_loads_plugins() {
    let tmp = Tmp::new("env");
    let probe = fixture(&tmp, "e2e-probe");
    let dir = suite(&tmp, &[("test_wi.py", WORKERINPUT_TEST)]);
    let python = test_python();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
    cmd.current_dir(&dir)
        .env("XDG_DATA_HOME", tmp.join("xdg"))
        .env("XDIST_PLUGINS", &probe)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS")
        .args(["--python", s(&python), "-n", "2", "-p", "no:cacheprovider"]);
    let out = run_with_timeout(&mut cmd, timeout());
    assert_exit(&out, 0);
    assert_eq!(summary(&out).get("passed"), 2, "{}", out.describe(3000));
}

/// A plugin installed in the user directory is available, not enabled: a run without it
/// named behaves as if it were not installed; a bare name (`--plugin e2e-probe`,
/// `XDIST_PLUGINS`, `[tool.xdist] plugins`) enables it.
#[test]
fn installed_plugins_are_available_not_enabled() {
    let tmp = Tmp::new("userdir");
    let dir = suite(&tmp, &[("test_wi.py", WORKERINPUT_TEST)]);
    // xdist_in sets XDG_DATA_HOME=<cwd>/.xdg-data.
    let user_dir = dir.join(".xdg-data/xdist/plugins");
    copy_lib(&fixtures_dir().join(lib_name("e2e-probe")), &user_dir, None);
    // Not named: the probe's workerinput is missing, both tests fail.
    let out = run_suite(&dir, &["-n", "2"]);
    assert_exit(&out, 1);
    assert_eq!(summary(&out).get("failed"), 2, "{}", out.describe(3000));
    for name in ["e2e-probe", "e2e_probe"] {
        let out = run_suite(&dir, &["-n", "2", "--plugin", name]);
        assert_exit(&out, 0);
        assert_eq!(summary(&out).get("passed"), 2, "{}", out.describe(3000));
    }
    let python = test_python();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
    cmd.current_dir(&dir)
        .env("XDG_DATA_HOME", dir.join(".xdg-data"))
        .env("XDIST_PLUGINS", "e2e-probe")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS")
        .args(["--python", s(&python), "-n", "2", "-p", "no:cacheprovider"]);
    let out = run_with_timeout(&mut cmd, timeout());
    assert_exit(&out, 0);
    assert_eq!(summary(&out).get("passed"), 2, "{}", out.describe(3000));
    tmp.write(
        "suite/pyproject.toml",
        "[tool.xdist]\nplugins = [\"e2e-probe\"]\n",
    );
    let out = run_suite(&dir, &["-n", "2"]);
    assert_exit(&out, 0);
    assert_eq!(summary(&out).get("passed"), 2, "{}", out.describe(3000));
    std::fs::remove_file(dir.join("pyproject.toml")).unwrap();
    // `xdist plugins` lists it as installed, not enabled.
    let out = xdist_in(&dir, &["plugins"]);
    assert_exit(&out, 0);
    assert!(
        out.stdout.contains("e2e-probe 0.3.1")
            && out.stdout.contains(s(&user_dir))
            && out
                .stdout
                .contains("installed, not enabled: `--plugin e2e-probe`"),
        "{}",
        out.describe(3000)
    );
    // -p no:NAME disables a plugin enabled by name too.
    let out = run_suite(
        &dir,
        &["-n", "2", "--plugin", "e2e-probe", "-p", "no:e2e-probe"],
    );
    assert_exit(&out, 1);
    assert_eq!(summary(&out).get("failed"), 2, "{}", out.describe(3000));
    // A name nothing is installed under is a load error (exit 4).
    let out = run_suite(&dir, &["-n", "2", "--plugin", "no-such-plugin"]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &["no plugin named no-such-plugin is installed"]);
}

// ---------------------------------------------------------------------------
// priority-scheduler
// ---------------------------------------------------------------------------

const PRIORITY_TESTS: &str = "\
def test_01(): pass
def test_02(): pass
def test_03_urgent(): pass
def test_04(): pass
def test_05(): pass
def test_06_urgent(): pass
def test_07_first(): pass
def test_08(): pass
";

#[test]
fn priority_scheduler_runs_matching_tests_first() {
    let tmp = Tmp::new("priority");
    let lib = plugin(&tmp, "priority-scheduler");
    let dir = suite(&tmp, &[("test_prio.py", PRIORITY_TESTS)]);
    let out = run_suite(
        &dir,
        &[
            "-n",
            "1",
            "-v",
            "--plugin",
            s(&lib),
            "--plugin-opt",
            "priority-scheduler.patterns=*_first,urgent",
        ],
    );
    assert_exit(&out, 0);
    let lines = parse_dist_v(&out.stdout);
    let order: Vec<String> = lines
        .iter()
        .map(|l| {
            assert_eq!(l.word, "PASSED", "{}", out.describe(3000));
            assert_eq!(l.worker.as_deref(), Some("gw0"));
            l.nodeid.trim_start_matches("test_prio.py::").to_string()
        })
        .collect();
    assert_eq!(
        order,
        [
            "test_07_first",
            "test_03_urgent",
            "test_06_urgent",
            "test_01",
            "test_02",
            "test_04",
            "test_05",
            "test_08"
        ],
        "{}",
        out.describe(3000)
    );

    // Control: without the plugin, collection order.
    let out = run_suite(&dir, &["-n", "1", "-v"]);
    assert_exit(&out, 0);
    let first = parse_dist_v(&out.stdout)
        .first()
        .map(|l| l.nodeid.clone())
        .unwrap_or_default();
    assert_eq!(first, "test_prio.py::test_01", "{}", out.describe(3000));
}

// ---------------------------------------------------------------------------
// crash-retry
// ---------------------------------------------------------------------------

const FLAKY_CRASH: &str = "\
import os, pathlib

MARK = pathlib.Path(__file__).parent / \"crashed-once\"

def test_ok_1(): pass

def test_crash_once():
    if not MARK.exists():
        MARK.write_text(\"x\")
        os._exit(1)

def test_ok_2(): pass
";

const ALWAYS_CRASH: &str = "\
import os

def test_ok_1(): pass

def test_always_crash():
    os._exit(3)

def test_ok_2(): pass
";

#[test]
fn crash_retry_turns_a_flaky_crash_into_a_pass() {
    let tmp = Tmp::new("retry-flaky");
    let lib = plugin(&tmp, "crash-retry");
    let dir = suite(&tmp, &[("test_flaky.py", FLAKY_CRASH)]);
    let out = run_suite(&dir, &["-n", "1", "-v", "--plugin", s(&lib)]);
    assert_exit(&out, 0);
    assert!(dir.join("crashed-once").exists(), "the test never crashed");
    let sm = summary(&out);
    assert_eq!(sm.get("passed"), 3, "{}", out.describe(6000));
    assert_eq!(sm.get("failed"), 0, "{}", out.describe(6000));
    assert_eq!(sm.get("rerun"), 1, "want `1 rerun`: {}", out.describe(6000));
    let words = outcomes(&out, "test_flaky.py::test_crash_once");
    assert_eq!(
        words.last().map(String::as_str),
        Some("PASSED"),
        "{words:?}\n{}",
        out.describe(6000)
    );
    assert_eq!(
        words.iter().filter(|w| *w == "PASSED").count(),
        1,
        "{words:?}"
    );
    assert!(!words.iter().any(|w| w == "FAILED"), "{words:?}");
}

#[test]
fn crash_retry_gives_up_after_max_reruns() {
    let tmp = Tmp::new("retry-always");
    let lib = plugin(&tmp, "crash-retry");
    let dir = suite(&tmp, &[("test_always.py", ALWAYS_CRASH)]);
    let out = run_suite(
        &dir,
        &[
            "-n",
            "1",
            "-v",
            "--plugin",
            s(&lib),
            "--plugin-opt",
            "crash-retry.max-reruns=2",
        ],
    );
    assert_exit(&out, 1);
    let sm = summary(&out);
    assert_eq!(sm.get("failed"), 1, "{}", out.describe(6000));
    assert_eq!(sm.get("passed"), 2, "{}", out.describe(6000));
    assert_eq!(sm.get("rerun"), 2, "want `2 rerun`: {}", out.describe(6000));
    let words = outcomes(&out, "test_always.py::test_always_crash");
    assert_eq!(
        words.iter().filter(|w| *w == "FAILED").count(),
        1,
        "{words:?}\n{}",
        out.describe(6000)
    );
    assert!(
        out.stdout.contains("crash-retry: crashed 3 times"),
        "{}",
        out.describe(6000)
    );
}

#[test]
fn crash_retry_disabled_with_p_no() {
    let tmp = Tmp::new("retry-disabled");
    let lib = plugin(&tmp, "crash-retry");
    let dir = suite(&tmp, &[("test_flaky.py", FLAKY_CRASH)]);
    let out = run_suite(
        &dir,
        &[
            "-n",
            "1",
            "--plugin",
            s(&lib),
            "--plugin-opt",
            "crash-retry.max-reruns=3",
            "-p",
            "no:crash-retry",
        ],
    );
    assert_exit(&out, 1);
    let sm = summary(&out);
    assert_eq!(sm.get("failed"), 1, "{}", out.describe(6000));
    assert_eq!(sm.get("passed"), 2, "{}", out.describe(6000));
    assert_eq!(sm.get("rerun"), 0, "{}", out.describe(6000));
}

// ---------------------------------------------------------------------------
// auto-workers
// ---------------------------------------------------------------------------

#[test]
fn auto_workers_decides_n_auto() {
    let tmp = Tmp::new("auto");
    let lib = plugin(&tmp, "auto-workers");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let out = run_suite(
        &dir,
        &[
            "-n",
            "auto",
            "--plugin",
            s(&lib),
            "--plugin-opt",
            "auto-workers.max=1",
        ],
    );
    assert_exit(&out, 0);
    assert!(
        out.stdout.contains("created: 1/1 worker"),
        "{}",
        out.describe(3000)
    );
    assert_eq!(summary(&out).get("passed"), 4);
}

#[test]
fn auto_num_workers_is_called_once_before_setupnodes() {
    let tmp = Tmp::new("auto-probe");
    let probe = fixture(&tmp, "e2e-probe");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let log_path = tmp.join("hooks.jsonl");
    let out = run_suite(
        &dir,
        &[
            "-n",
            "logical",
            "--plugin",
            s(&probe),
            "--plugin-opt",
            "e2e-probe.auto=3",
            "--plugin-opt",
            &format!("e2e-probe.log={}", s(&log_path)),
        ],
    );
    assert_exit(&out, 0);
    assert!(
        out.stdout.contains("created: 3/3 workers"),
        "{}",
        out.describe(3000)
    );
    let log = std::fs::read_to_string(&log_path).expect("hook log");
    let calls: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let auto: Vec<&Value> = calls
        .iter()
        .filter(|c| c["hook"] == "auto_num_workers")
        .collect();
    assert_eq!(auto.len(), 1, "{log}");
    assert_eq!(auto[0]["numprocesses"], "logical", "{log}");
    assert_eq!(calls[0]["hook"], "auto_num_workers", "{log}");
    assert_eq!(calls[1]["hook"], "setupnodes", "{log}");
    assert_eq!(calls[1]["specs"].as_array().map(Vec::len), Some(3), "{log}");
}

// ---------------------------------------------------------------------------
// Errors: one `xdist: error:` line naming the plugin, exit 4 (load) or 3 (hook)
// ---------------------------------------------------------------------------

#[test]
fn missing_plugin_file_is_a_load_error() {
    let tmp = Tmp::new("err-missing");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let missing = tmp.join("nowhere/libmissing_plugin.so");
    let out = run_suite(&dir, &["-n", "2", "--plugin", s(&missing)]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &[s(&missing), "does not exist"]);
    assert!(!out.stdout.contains("passed"), "{}", out.describe(3000));
}

#[test]
fn a_library_that_is_not_a_plugin_is_a_load_error() {
    let tmp = Tmp::new("err-notplugin");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let plain = fixture(&tmp, "plain-cdylib");
    let out = run_suite(&dir, &["-n", "2", "--plugin", s(&plain)]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &[s(&plain), "not an xdist plugin"]);

    // Not even a library.
    let junk = tmp.write("libs/libjunk.so", "this is not ELF\n");
    let out = run_suite(&dir, &["-n", "2", "--plugin", s(&junk)]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &[s(&junk), "not an xdist plugin"]);
}

#[test]
fn plugin_opt_for_an_unknown_plugin_is_a_load_error() {
    let tmp = Tmp::new("err-opt");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let lib = plugin(&tmp, "crash-retry");
    let out = run_suite(
        &dir,
        &[
            "-n",
            "2",
            "--plugin",
            s(&lib),
            "--plugin-opt",
            "no-such-plugin.key=1",
        ],
    );
    assert_exit(&out, 4);
    assert_one_error_line(&out, &["no-such-plugin"]);

    // Also when no plugin is loaded at all.
    let out = run_suite(&dir, &["-n", "2", "--plugin-opt", "no-such-plugin.key=1"]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &["no-such-plugin"]);

    // A key the plugin does not know: its `new` rejects it.
    let out = run_suite(
        &dir,
        &[
            "-n",
            "2",
            "--plugin",
            s(&lib),
            "--plugin-opt",
            "crash-retry.max-rerunz=1",
        ],
    );
    assert_exit(&out, 4);
    assert_one_error_line(&out, &["crash-retry", "max-rerunz"]);
}

#[test]
fn two_plugins_with_one_name_is_a_load_error() {
    let tmp = Tmp::new("err-dup");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let a = plugin(&tmp, "crash-retry");
    let b = copy_lib(&a, &tmp.join("other"), Some("libcrash_retry_copy.so"));
    let out = run_suite(&dir, &["-n", "2", "--plugin", s(&a), "--plugin", s(&b)]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &["crash-retry", s(&a), s(&b)]);

    // The same file twice is loaded once.
    let out = run_suite(&dir, &["-n", "2", "--plugin", s(&a), "--plugin", s(&a)]);
    assert_exit(&out, 0);
}

#[test]
fn a_plugin_panicking_in_a_hook_is_exit_3_not_an_abort() {
    let tmp = Tmp::new("err-panic");
    let dir = suite(&tmp, &[("test_four.py", FOUR_TESTS)]);
    let probe = fixture(&tmp, "e2e-probe");
    let out = run_suite(
        &dir,
        &[
            "-n",
            "2",
            "--plugin",
            s(&probe),
            "--plugin-opt",
            "e2e-probe.panic=testnodeready",
        ],
    );
    assert_exit(&out, 3);
    assert_one_error_line(
        &out,
        &[
            "e2e-probe",
            "panicked",
            "testnodeready",
            "(at e2e-probe/src/lib.rs:",
        ],
    );
    assert!(!dir.join("core").exists());
}

// ---------------------------------------------------------------------------
// `xdist plugins`
// ---------------------------------------------------------------------------

#[test]
fn xdist_plugins_lists_name_version_and_hooks() {
    let tmp = Tmp::new("list");
    let retry = plugin(&tmp, "crash-retry");
    let lifecycle = plugin(&tmp, "node-lifecycle");
    let out = xdist_in(
        tmp.path(),
        &["plugins", "--plugin", s(&retry), "--plugin", s(&lifecycle)],
    );
    assert_exit(&out, 0);
    let text = &out.stdout;
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!("crash-retry {version}")),
        "{}",
        out.describe(3000)
    );
    assert!(
        text.contains(&format!("node-lifecycle {version}")),
        "{text}"
    );
    assert!(text.contains("hooks: handlecrashitem\n"), "{text}");
    assert!(
        text.contains(
            "hooks: setupnodes, newgateway, configure_node, testnodeready, testnodedown, \
             node_collection_finished, sessionfinish"
        ),
        "{text}"
    );
    // Load order.
    assert!(text.find("crash-retry").unwrap() < text.find("node-lifecycle").unwrap());

    // Errors go through the same path as a run.
    let out = xdist_in(tmp.path(), &["plugins", "--plugin", "/no/such/libx.so"]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &["/no/such/libx.so"]);

    // Nothing loaded.
    let out = xdist_in(tmp.path(), &["plugins"]);
    assert_exit(&out, 0);
    assert!(
        out.stdout.contains("no plugins enabled or installed"),
        "{}",
        out.describe(3000)
    );
}

#[test]
fn xdist_plugins_paths_prints_the_directories() {
    let tmp = Tmp::new("paths");
    let out = xdist_in(tmp.path(), &["plugins", "--paths"]);
    assert_exit(&out, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let user = tmp.join(".xdg-data/xdist/plugins");
    assert_eq!(lines.first(), Some(&s(&user)), "{}", out.describe(3000));
    assert!(
        lines.iter().any(|l| l.ends_with("/lib/xdist/plugins")),
        "{}",
        out.describe(3000)
    );
    assert!(
        lines.contains(&"/usr/lib/xdist/plugins"),
        "{}",
        out.describe(3000)
    );
}

// ---------------------------------------------------------------------------
// [tool.xdist] in pyproject.toml
// ---------------------------------------------------------------------------

#[test]
fn pyproject_tool_xdist_plugins_and_plugin_opts() {
    let tmp = Tmp::new("pyproject");
    let proj = tmp.join("proj");
    copy_lib(
        &first_party_dir().join(lib_name("node-lifecycle")),
        &proj.join("plugins"),
        None,
    );
    copy_lib(
        &fixtures_dir().join(lib_name("e2e-probe")),
        &proj.join("plugins"),
        None,
    );
    tmp.write(
        "proj/pyproject.toml",
        &format!(
            "[tool.pytest.ini_options]\n\
             addopts = \"-p no:cacheprovider\"\n\n\
             [tool.xdist]\n\
             plugins = [\"plugins/{}\", \"plugins/{}\"]\n\
             plugin-opts = [\"node-lifecycle.output=lifecycle.json\"]\n",
            lib_name("node-lifecycle"),
            lib_name("e2e-probe")
        ),
    );
    tmp.write("proj/tests/test_four.py", FOUR_TESTS);
    tmp.write("proj/tests/test_wi.py", WORKERINPUT_TEST);
    let out = run_suite(&proj, &["-n", "2"]);
    assert_exit(&out, 0);
    assert_eq!(summary(&out).get("passed"), 6, "{}", out.describe(3000));
    check_lifecycle_json(&read_json(&proj.join("lifecycle.json"), &out), 6, &out);

    // The command line adds to (and wins over) pyproject options.
    let other = tmp.join("other.json");
    let out = run_suite(
        &proj,
        &[
            "-n",
            "2",
            "--plugin-opt",
            &format!("node-lifecycle.output={}", s(&other)),
        ],
    );
    assert_exit(&out, 0);
    check_lifecycle_json(&read_json(&other, &out), 6, &out);

    // `xdist plugins` in the project lists them.
    let out = xdist_in(&proj, &["plugins"]);
    assert_exit(&out, 0);
    assert!(
        out.stdout.contains("node-lifecycle ") && out.stdout.contains("e2e-probe 0.3.1"),
        "{}",
        out.describe(3000)
    );

    // A bad pyproject option is an error like a bad --plugin-opt.
    tmp.write(
        "proj/pyproject.toml",
        &format!(
            "[tool.pytest.ini_options]\n\n[tool.xdist]\nplugins = [\"plugins/{}\"]\nplugin-opts = [\"node-lifecycle.colour=red\"]\n",
            lib_name("node-lifecycle")
        ),
    );
    let out = run_suite(&proj, &["-n", "2"]);
    assert_exit(&out, 4);
    assert_one_error_line(&out, &["node-lifecycle", "colour"]);
}
