// Over 700 lines on purpose: one test binary per area (each file in tests/ is linked and started on its own), its cases sharing the helpers here.
//! Fault injection: workers that crash (`os._exit`, SIGSEGV, SIGKILL), are killed from
//! outside, hang, die while importing a conftest, write garbage on the protocol channel,
//! raise KeyboardInterrupt or hit an INTERNALERROR; and Ctrl-C sent to a real run.
//!
//! The suites live in `tests/faults/<name>/`. Each test copies its suite into a fresh
//! temporary directory whose path is unique to the test: it is the suite dir on the
//! controller's command line, the working directory of the controller and its workers, and
//! the value of `XDIST_FAULTS_MARKER` in their environment. After the controller exits, no
//! process whose command line, environment or working directory holds that path may remain.
//!
//! A suite without a conftest of its own gets `tests/faults/record_runs.py` as one: it
//! appends each test's node id to `runs.log` when the test starts, so a test can check that
//! every test (crashing or not) ran exactly once.
//!
//! Each test asserts outcomes (`-v` lines), output lines, the summary and the exit code,
//! and runs in a few seconds; a run that hangs is killed after `RUN_TIMEOUT` and fails.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{match_nodeid, parse_dist_v, parse_summary, repo_root, tail, test_python};
use wait_timeout::ChildExt;

thread_local! {
    /// `--start` of the runs this test thread makes (see `fork_mode`).
    static START: std::cell::Cell<&'static str> = const { std::cell::Cell::new("spawn") };
}

/// A run that takes longer is a hang: it is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long processes may take to disappear after the controller exited.
const LEFTOVER_WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A suite in its own temporary directory
// ---------------------------------------------------------------------------

struct Suite {
    dir: PathBuf,
}

impl Suite {
    fn new(name: &str) -> Suite {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let src = repo_root().join("tests/faults").join(name);
        assert!(src.is_dir(), "{} is missing", src.display());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "xdist-faults-{name}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        copy_dir(&src, &dir);
        // The suites without a conftest of their own share the one that logs each test's run.
        let conftest = dir.join("conftest.py");
        if !conftest.exists() {
            std::fs::copy(repo_root().join("tests/faults/record_runs.py"), &conftest)
                .expect("copy tests/faults/record_runs.py");
        }
        Suite { dir }
    }

    fn marker(&self) -> String {
        self.dir.display().to_string()
    }

    /// Node ids from `runs.log`, in the order the tests started.
    fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("runs.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn start(&self, args: &[&str]) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdist"));
        cmd.current_dir(&self.dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("XDIST_FAULTS_MARKER", self.marker())
            .env("COLUMNS", "200")
            .env_remove("PYTEST_ADDOPTS")
            .env_remove("PYTEST_PLUGINS")
            .env_remove("VIRTUAL_ENV")
            .arg("--python")
            .arg(test_python())
            .args(["-p", "no:cacheprovider"])
            .args(common::start_args(START.with(|m| m.get())))
            .args(args)
            .arg(&self.dir);
        Running::spawn(cmd, self.marker())
    }

    fn run(&self, args: &[&str]) -> Out {
        self.start(args).wait(RUN_TIMEOUT)
    }

    /// Waits until `runs.log` has at least `n` lines.
    fn wait_runs(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.runs().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" || name == "runs.log" || name == ".pytest_cache" {
            continue;
        }
        let to = dst.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// A running controller
// ---------------------------------------------------------------------------

struct Running {
    child: Child,
    cmdline: String,
    marker: String,
    start: Instant,
    out_t: JoinHandle<Vec<u8>>,
    err_t: JoinHandle<Vec<u8>>,
}

#[derive(Debug)]
struct Out {
    cmdline: String,
    stdout: String,
    stderr: String,
    /// `None` when killed by a signal or by the timeout.
    code: Option<i32>,
    timed_out: bool,
    elapsed: Duration,
    controller_pid: u32,
    /// Processes left holding the marker after the controller exited.
    leftovers: Vec<String>,
}

impl Running {
    fn spawn(mut cmd: Command, marker: String) -> Running {
        let cmdline = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
        let mut o = child.stdout.take().unwrap();
        let mut e = child.stderr.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = o.read_to_end(&mut b);
            b
        });
        let err_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = e.read_to_end(&mut b);
            b
        });
        Running {
            child,
            cmdline,
            marker,
            start: Instant::now(),
            out_t,
            err_t,
        }
    }

    /// Sends `sig` to the controller (only: workers have their own process group).
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the child we started and have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn wait(mut self, timeout: Duration) -> Out {
        let pid = self.child.id();
        let left = timeout.saturating_sub(self.start.elapsed());
        let (status, timed_out) = match self.child.wait_timeout(left).expect("wait") {
            Some(st) => (Some(st), false),
            None => {
                let _ = self.child.kill();
                (self.child.wait().ok(), true)
            }
        };
        let elapsed = self.start.elapsed();
        let join = |t: JoinHandle<Vec<u8>>| -> String {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                String::from_utf8_lossy(&t.join().unwrap_or_default()).into_owned()
            } else {
                "[output reader still blocked: a child process kept the pipe open]".into()
            }
        };
        let stdout = join(self.out_t);
        let stderr = join(self.err_t);
        let leftovers = wait_no_leftovers(&self.marker, LEFTOVER_WAIT);
        Out {
            cmdline: self.cmdline,
            stdout,
            stderr,
            code: if timed_out {
                None
            } else {
                status.and_then(|s| s.code())
            },
            timed_out,
            elapsed,
            controller_pid: pid,
            leftovers,
        }
    }
}

/// Processes (other than this one) whose command line, environment or working directory
/// contains `marker`, as `pid: cmdline` strings.
fn processes_with(marker: &str) -> Vec<String> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let p = e.path();
        let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(p.join("environ")).unwrap_or_default();
        let cwd = std::fs::read_link(p.join("cwd")).unwrap_or_default();
        let has = |b: &[u8]| b.windows(marker.len()).any(|w| w == marker.as_bytes());
        if has(&cmdline) || has(&environ) || cwd.to_string_lossy().contains(marker) {
            let shown: String = String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .chars()
                .take(120)
                .collect();
            found.push(format!("{pid}: {shown}"));
        }
    }
    found
}

fn wait_no_leftovers(marker: &str, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    loop {
        let found = processes_with(marker);
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Checking a run
// ---------------------------------------------------------------------------

struct Check<'a> {
    name: String,
    out: &'a Out,
    problems: Vec<String>,
}

impl<'a> Check<'a> {
    fn new(name: impl Into<String>, out: &'a Out) -> Check<'a> {
        let mut c = Check {
            name: name.into(),
            out,
            problems: Vec::new(),
        };
        if out.timed_out {
            c.fail(format!("the run did not end within {RUN_TIMEOUT:?} (hang)"));
        }
        if !out.leftovers.is_empty() {
            c.fail(format!(
                "processes left behind by controller pid {}:\n    {}",
                out.controller_pid,
                out.leftovers.join("\n    ")
            ));
        }
        if out.stderr.contains("panicked") {
            c.fail("the controller panicked");
        }
        c
    }

    fn fail(&mut self, msg: impl Into<String>) {
        self.problems.push(msg.into());
    }

    fn expect(&mut self, ok: bool, msg: impl Into<String>) {
        if !ok {
            self.fail(msg);
        }
    }

    fn exit(&mut self, code: i32) {
        if self.out.code != Some(code) {
            self.fail(format!("exit code {:?}, want {code}", self.out.code));
        }
    }

    /// A stdout line containing `needle`.
    fn line(&mut self, needle: &str) {
        if !self.out.stdout.lines().any(|l| l.contains(needle)) {
            self.fail(format!("no output line contains {needle:?}"));
        }
    }

    fn no_line(&mut self, needle: &str) {
        if let Some(l) = self.out.stdout.lines().find(|l| l.contains(needle)) {
            self.fail(format!("unexpected output line {l:?}"));
        }
    }

    /// The final summary line has exactly these counts.
    fn summary(&mut self, want: &[(&str, u64)]) {
        match parse_summary(&self.out.stdout) {
            Some(s) => {
                let want_map: BTreeMap<String, u64> =
                    want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                let got: BTreeMap<String, u64> = s
                    .counts
                    .iter()
                    .filter(|(k, _)| k.as_str() != "warnings")
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                if got != want_map {
                    self.fail(format!("summary {:?}, want {want:?}", s.line));
                }
            }
            None => self.fail("no summary line"),
        }
    }

    fn finish(self) {
        if !self.problems.is_empty() {
            panic!(
                "[{}]\n- {}\n\n$ {}\n[exit {:?}{}, {:.2?}]\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.name,
                self.problems.join("\n- "),
                self.out.cmdline,
                self.out.code,
                if self.out.timed_out {
                    ", TIMED OUT"
                } else {
                    ""
                },
                self.out.elapsed,
                tail(&self.out.stdout, 16000),
                tail(&self.out.stderr, 4000),
            );
        }
    }
}

/// Final outcome words per expected node id, from the `-v` lines.
fn outcomes(stdout: &str, ids: &[String]) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut map: BTreeMap<String, Vec<String>> =
        ids.iter().map(|id| (id.clone(), Vec::new())).collect();
    let mut unknown = Vec::new();
    for l in parse_dist_v(stdout) {
        // The longest expected id the line names (`t[1]` vs `t[10]` never collide, but a
        // crashing worker may append text after the id).
        match ids
            .iter()
            .filter(|id| match_nodeid(&l.nodeid, id))
            .max_by_key(|id| id.len())
        {
            Some(id) => map.get_mut(id).unwrap().push(l.word),
            None => unknown.push(format!("{} {}", l.word, l.nodeid)),
        }
    }
    (map, unknown)
}

const FINAL_WORDS: &[&str] = &["PASSED", "FAILED", "SKIPPED", "XFAIL", "XPASS", "ERROR"];

/// The invariant: every collected test has exactly one final outcome (`per_test`: one per
/// worker with `--dist each`), except the ones the controller says were not run
/// (`xdist: N tests were not run`), and no outcome line names an unknown test. Returns the
/// (first) outcome of each test that has one.
fn check_invariant(c: &mut Check<'_>, ids: &[String], per_test: usize) -> BTreeMap<String, String> {
    let (map, unknown) = outcomes(&c.out.stdout, ids);
    for u in unknown {
        c.fail(format!("outcome line for an unknown test: {u}"));
    }
    let mut finals = BTreeMap::new();
    let mut without = 0;
    for (id, words) in &map {
        let fin: Vec<&String> = words
            .iter()
            .filter(|w| FINAL_WORDS.contains(&w.as_str()))
            .collect();
        match fin.len() {
            0 => without += 1,
            n if n == per_test => {
                finals.insert(id.clone(), fin[0].clone());
            }
            n => c.fail(format!(
                "{id}: {n} final outcomes {words:?}, want {per_test}"
            )),
        }
    }
    let not_run = not_run_count(&c.out.stdout);
    if without != not_run {
        c.fail(format!(
            "{without} tests have no outcome line, but the controller says {not_run} were not run"
        ));
    }
    finals
}

/// `N` of `xdist: N tests were not run` in the summary (0 if absent).
fn not_run_count(stdout: &str) -> usize {
    stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim_matches(|c| c == '=' || c == ' ');
            let rest = l.strip_prefix("xdist: ")?;
            let (n, tail) = rest.split_once(' ')?;
            (tail == "tests were not run" || tail == "test was not run")
                .then(|| n.parse().ok())
                .flatten()
        })
        .next_back()
        .unwrap_or(0)
}

/// The `-v` worker (`gwN`) that reported `worker '...' crashed while running '<id>'`.
fn crash_workers(stdout: &str, id: &str) -> Vec<String> {
    let needle = format!("crashed while running '{id}'");
    stdout
        .lines()
        .filter(|l| l.starts_with("worker '") && l.contains(&needle))
        .filter_map(|l| l.split('\'').nth(1).map(str::to_string))
        .collect()
}

fn count_runs(runs: &[String], id: &str) -> usize {
    runs.iter().filter(|r| *r == id).count()
}

/// `id` started exactly once (a crash's test is not run again).
fn expect_ran_once(c: &mut Check, suite: &Suite, id: &str) {
    c.expect(
        count_runs(&suite.runs(), id) == 1,
        format!("{id} ran again"),
    );
}

// ---------------------------------------------------------------------------
// crash3: 50 tests, 3 of which kill their worker
// ---------------------------------------------------------------------------

/// (node id, cause as shown in `worker exited with <cause>`)
const CRASHERS: &[(&str, &str)] = &[
    ("test_a.py::test_exit_crash", "exit code 1"),
    ("test_b.py::test_segv_crash", "SIGSEGV"),
    ("test_c.py::test_kill_crash", "SIGKILL"),
];

fn crash3_ids() -> Vec<String> {
    let mut ids = Vec::new();
    ids.extend((0..16).map(|n| format!("test_a.py::test_a[{n}]")));
    ids.push("test_a.py::test_exit_crash".into());
    ids.extend((0..16).map(|n| format!("test_b.py::test_b[{n}]")));
    ids.push("test_b.py::test_segv_crash".into());
    ids.extend((0..10).map(|n| format!("test_c.py::test_c[{n}]")));
    ids.extend((0..5).map(|n| format!("test_c.py::test_grouped[{n}]")));
    ids.push("test_c.py::test_kill_crash".into());
    assert_eq!(ids.len(), 50);
    ids
}

/// Checks one crash report: the `crashed while running` line names the test, the cause
/// follows it, and that worker's `node down` line is there. Returns the crashed workers.
fn check_crash_report(c: &mut Check<'_>, id: &str, cause: &str, times: usize) -> Vec<String> {
    let workers = crash_workers(&c.out.stdout, id);
    if workers.len() != times {
        c.fail(format!(
            "{} `worker '...' crashed while running '{id}'` lines, want {times}",
            workers.len()
        ));
    }
    let lines: Vec<&str> = c.out.stdout.lines().collect();
    for w in &workers {
        let head = format!("worker '{w}' crashed while running '{id}'");
        let at = lines.iter().position(|l| *l == head);
        let cause_line = format!("worker exited with {cause}");
        let ok = at.is_some_and(|at| lines[at + 1..].iter().take(3).any(|l| *l == cause_line));
        c.expect(ok, format!("no `{cause_line}` right after `{head}`"));
        c.line(&format!("[{w}] node down: "));
    }
    workers
}

fn crash3_in_mode(dist: &str) {
    let suite = Suite::new("crash3");
    let out = suite.run(&["-n", "2", "--dist", dist, "-v"]);
    let mut c = Check::new(format!("crash3 --dist {dist}"), &out);
    let ids = crash3_ids();
    // `each` runs every test on every worker.
    let per_test = if dist == "each" { 2 } else { 1 };
    let finals = check_invariant(&mut c, &ids, per_test);
    let mut crashed = Vec::new();
    for (id, cause) in CRASHERS {
        crashed.extend(check_crash_report(&mut c, id, cause, per_test));
        if per_test == 1 {
            c.expect(
                finals.get(*id).map(String::as_str) == Some("FAILED"),
                format!("{id}: outcome {:?}, want FAILED", finals.get(*id)),
            );
        }
    }
    // Every crash but possibly the last one (nothing left to run) replaces its worker.
    let replacing: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("replacing crashed worker "))
        .collect();
    for r in &replacing {
        c.expect(
            crashed.iter().any(|w| w == r),
            format!("`replacing crashed worker {r}` names no crashed worker"),
        );
    }
    c.expect(
        replacing.len() + 1 >= crashed.len() && replacing.len() <= crashed.len(),
        format!(
            "{} `replacing crashed worker` lines for {} crashes",
            replacing.len(),
            crashed.len()
        ),
    );
    if per_test == 1 {
        for id in &ids {
            if CRASHERS.iter().all(|(cid, _)| cid != id) {
                c.expect(
                    finals.get(id).map(String::as_str) == Some("PASSED"),
                    format!("{id}: outcome {:?}, want PASSED", finals.get(id)),
                );
            }
        }
    }
    c.summary(&[
        ("failed", 3 * per_test as u64),
        ("passed", 47 * per_test as u64),
    ]);
    c.exit(1);
    let runs = suite.runs();
    for id in &ids {
        let n = count_runs(&runs, id);
        c.expect(
            n == per_test,
            format!("{id} ran {n} times, want {per_test}"),
        );
    }
    c.finish();
}

#[test]
fn crashes_dist_load() {
    crash3_in_mode("load");
}

#[test]
fn crashes_dist_loadscope() {
    crash3_in_mode("loadscope");
}

#[test]
fn crashes_dist_loadfile() {
    crash3_in_mode("loadfile");
}

#[test]
fn crashes_dist_loadgroup() {
    crash3_in_mode("loadgroup");
}

#[test]
fn crashes_dist_worksteal() {
    crash3_in_mode("worksteal");
}

/// `each` runs every test on every worker: each crashing test crashes once per worker.
#[test]
fn crashes_dist_each() {
    crash3_in_mode("each");
}

// ---------------------------------------------------------------------------
// --max-worker-restart
// ---------------------------------------------------------------------------

/// Past the limit the run stops; tests that never ran are counted as not run, and
/// whatever ran was reported exactly once.
fn restart_limit(limit: &str, message: &str, crashes: usize) {
    // Which worker gets a crashing test first varies: `gw?` is any worker id.
    let (head, tail) = message.split_once("gw?").unwrap_or((message, ""));
    let suite = Suite::new("crash3");
    let out = suite.run(&["-n", "2", "--max-worker-restart", limit, "-v"]);
    let mut c = Check::new(format!("--max-worker-restart {limit}"), &out);
    let ids = crash3_ids();
    let finals = check_invariant(&mut c, &ids, 1);
    let said = out.stdout.lines().any(|l| {
        l.split_once(&format!("xdist: {head}"))
            .is_some_and(|(_, rest)| rest.contains(tail))
    });
    c.expect(said, format!("no `xdist: {message}` line"));
    c.exit(1);
    let failed: Vec<&String> = finals
        .iter()
        .filter(|(_, w)| *w == "FAILED")
        .map(|(id, _)| id)
        .collect();
    c.expect(
        failed.len() >= crashes,
        format!("failed {failed:?}, want at least {crashes} crashed tests"),
    );
    for f in &failed {
        c.expect(
            CRASHERS.iter().any(|(id, _)| id == f),
            format!("{f} failed but does not crash"),
        );
    }
    let replacing = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("replacing crashed worker "))
        .count();
    c.expect(
        replacing == crashes - 1,
        format!("{replacing} replacements, want {}", crashes - 1),
    );
    let not_run = not_run_count(&out.stdout);
    c.expect(not_run > 0, "no `xdist: N tests were not run` line");
    let passed = finals.values().filter(|w| *w == "PASSED").count();
    c.expect(
        passed + failed.len() + not_run == ids.len(),
        format!(
            "{passed} passed + {} failed + {not_run} not run != {}",
            failed.len(),
            ids.len()
        ),
    );
    // Every test that started has its outcome shown; none ran twice.
    let runs = suite.runs();
    for id in &ids {
        let n = count_runs(&runs, id);
        c.expect(n <= 1, format!("{id} ran {n} times"));
        c.expect(
            (n == 1) == finals.contains_key(id),
            format!("{id}: ran {n} times, outcome {:?}", finals.get(id)),
        );
    }
    c.finish();
}

#[test]
fn max_worker_restart_0_disables_restarting() {
    restart_limit("0", "worker gw? crashed and worker restarting disabled", 1);
}

#[test]
fn max_worker_restart_limit_reached() {
    restart_limit("1", "maximum crashed workers reached: 1", 2);
}

// ---------------------------------------------------------------------------
// Killed from outside, hanging, broken conftest, garbage on the channel
// ---------------------------------------------------------------------------

/// Whether `pid` is one of this suite's processes (never signal anything else).
fn owned_by(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|e| e.windows(marker.len()).any(|w| w == marker.as_bytes()))
        .unwrap_or(false)
}

#[test]
fn worker_killed_from_outside_mid_test() {
    let suite = Suite::new("external_kill");
    let run = suite.start(&["-n", "2", "-v"]);
    let pid_file = suite.dir.join("victim.pid");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut victim = None;
    while Instant::now() < deadline && victim.is_none() {
        victim = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(pid) = victim {
        assert!(
            owned_by(pid, &suite.marker()),
            "pid {pid} is not our worker"
        );
        // SAFETY: kill(2) on a worker of the run started above.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
    let out = run.wait(RUN_TIMEOUT);
    let mut c = Check::new("worker killed from outside", &out);
    c.expect(victim.is_some(), "test_victim never wrote its pid");
    let id = "test_victim.py::test_victim";
    let mut ids: Vec<String> = (0..6)
        .map(|n| format!("test_victim.py::test_ok[{n}]"))
        .collect();
    ids.push(id.into());
    let finals = check_invariant(&mut c, &ids, 1);
    check_crash_report(&mut c, id, "SIGKILL", 1);
    c.expect(
        finals.get(id).map(String::as_str) == Some("FAILED"),
        "test_victim not FAILED",
    );
    c.summary(&[("failed", 1), ("passed", 6)]);
    c.exit(1);
    c.expect(
        out.elapsed < Duration::from_secs(15),
        "the victim's 30 s sleep was waited out",
    );
    expect_ran_once(&mut c, &suite, id);
    c.finish();
}

#[test]
fn hanging_test_killed_with_its_stack() {
    let suite = Suite::new("hang");
    let out = suite.run(&["-n", "2", "--hang-timeout", "2", "-v"]);
    let mut c = Check::new("--hang-timeout 2", &out);
    let id = "test_hang.py::test_hang";
    let mut ids: Vec<String> = (0..6)
        .map(|n| format!("test_hang.py::test_ok[{n}]"))
        .collect();
    ids.push(id.into());
    let finals = check_invariant(&mut c, &ids, 1);
    c.expect(
        finals.get(id).map(String::as_str) == Some("FAILED"),
        "test_hang not FAILED",
    );
    c.expect(
        !crash_workers(&out.stdout, id).is_empty(),
        "no `crashed while running 'test_hang.py::test_hang'` line",
    );
    c.line("test exceeded --hang-timeout of 2s; worker killed (SIGKILL); Python stacks:");
    // The stack of the hung test, taken before the kill.
    c.line("test_hang.py\", line 14 in wait_forever");
    c.line("test_hang.py\", line 18 in test_hang");
    c.summary(&[("failed", 1), ("passed", 6)]);
    c.exit(1);
    c.expect(
        out.elapsed < Duration::from_secs(9),
        format!("took {:.1?}: the hang was not cut at ~2 s", out.elapsed),
    );
    expect_ran_once(&mut c, &suite, id);
    c.finish();
}

/// `--hang-timeout` blames only the test that hung, and taking its stacks disturbs no test:
/// tests near the timeout either pass or are the hung one (one outcome each), tests after
/// them are never blamed, and a sleep in C holding the GIL is not woken up by the request.
#[test]
fn hang_timeout_blames_the_hung_test_only() {
    let suite = Suite::new("hang_blame");
    let out = suite.run(&["-n", "2", "--hang-timeout", "2", "-v"]);
    let mut c = Check::new("--hang-timeout 2, tests around it", &out);
    let mut ids: Vec<String> = ["1.0", "2.2", "2.4"]
        .iter()
        .map(|s| format!("test_blame.py::test_near_timeout[{s}]"))
        .collect();
    let hung = [
        "test_blame.py::test_hang_python",
        "test_blame.py::test_hang_c",
    ];
    ids.extend(hung.iter().map(|s| s.to_string()));
    ids.extend((0..6).map(|n| format!("test_blame.py::test_quick[{n}]")));
    let finals = check_invariant(&mut c, &ids, 1);
    c.expect(finals.len() == ids.len(), "a test has no outcome");
    for (id, word) in &finals {
        let exceeded = out.stdout.lines().any(|l| {
            l.starts_with(&format!("FAILED {id} - worker '"))
                || crash_workers(&out.stdout, id).len() == 1
        });
        if hung.contains(&id.as_str()) {
            c.expect(
                word == "FAILED",
                format!("{id}: {word}, want FAILED (hung)"),
            );
            c.expect(exceeded, format!("{id}: no crash report"));
        } else if id.contains("[1.0]") || id.contains("test_quick") {
            c.expect(word == "PASSED", format!("{id}: {word}, want PASSED"));
        } else {
            // Over the timeout, done within the stack wait: passed, or killed as hung.
            c.expect(
                word == "PASSED" || exceeded,
                format!("{id}: {word} without being the hung test"),
            );
        }
    }
    // The stacks of each hung test, taken before the kill.
    c.line("test_blame.py\", line 11 in sleep_in_python");
    c.line("test_blame.py\", line 16 in sleep_in_c");
    let hangs = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("test exceeded --hang-timeout of 2s; worker killed (SIGKILL)"))
        .count();
    let failed = finals.values().filter(|w| *w == "FAILED").count();
    c.expect(
        hangs == failed,
        format!("{hangs} hang reports for {failed} failures"),
    );
    c.exit(1);
    for id in &ids {
        expect_ran_once(&mut c, &suite, id);
    }
    c.finish();
}

/// A session fixture whose teardown hangs: each worker is killed in the teardown of its
/// last test, which keeps the one outcome it had (PASSED); the crash is reported on its own.
#[test]
fn hang_in_session_teardown_keeps_one_outcome_per_test() {
    let suite = Suite::new("hang_teardown");
    let out = suite.run(&["-n", "2", "--hang-timeout", "2", "-v"]);
    let mut c = Check::new("session fixture teardown hangs", &out);
    let ids: Vec<String> = (0..8)
        .map(|n| format!("test_teardown.py::test_uses_it[{n}]"))
        .collect();
    let finals = check_invariant(&mut c, &ids, 1);
    c.expect(
        finals.len() == 8 && finals.values().all(|w| w == "PASSED"),
        format!("outcomes {finals:?}, want 8 PASSED"),
    );
    let crashes = out
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with("worker gw")
                && l.contains("crashed in the teardown of 'test_teardown.py::test_uses_it[")
                && l.ends_with("after its outcome, exceeding --hang-timeout of 2s (SIGKILL)")
        })
        .count();
    c.expect(
        crashes == 2,
        format!("{crashes} teardown crash lines, want 2"),
    );
    c.line("test_teardown.py\", line 11 in session_resource");
    c.no_line("crashed while running");
    c.summary(&[("passed", 8)]);
    c.exit(1);
    c.finish();
}

#[test]
fn conftest_crash_in_one_worker() {
    let suite = Suite::new("conftest_crash");
    let out = suite.run(&["-n", "2", "-v"]);
    let mut c = Check::new("conftest kills gw1 at import", &out);
    let ids: Vec<String> = (0..8)
        .map(|n| format!("test_ok.py::test_ok[{n}]"))
        .collect();
    let finals = check_invariant(&mut c, &ids, 1);
    c.expect(
        finals.len() == 8 && finals.values().all(|w| w == "PASSED"),
        format!("outcomes {finals:?}, want 8 PASSED"),
    );
    c.line("[gw1] node down: ");
    c.line("xdist: worker gw1 crashed before its pytest session started (exit code 1)");
    c.line("replacing crashed worker gw1");
    c.summary(&[("passed", 8)]);
    // A worker crashed: never exit 0.
    c.exit(1);
    c.finish();
}

/// A worker that dies after its last test (in `pytest_sessionfinish` or
/// `pytest_unconfigure`, by `os._exit` or SIGSEGV) loses no report and blames no test: every
/// test passed, the crash is the session's, and the run fails.
#[test]
fn crash_after_the_last_test_blames_the_session() {
    for (hook, how, cause) in [
        ("pytest_sessionfinish", "exit", "exit code 7"),
        ("pytest_sessionfinish", "segv", "SIGSEGV"),
        ("pytest_unconfigure", "exit", "exit code 7"),
        ("pytest_unconfigure", "segv", "SIGSEGV"),
    ] {
        let suite = Suite::new("session_crash");
        std::fs::write(suite.dir.join("fault.txt"), format!("{hook} {how}")).unwrap();
        // Not replaced, so not counted: `--max-worker-restart 0` changes nothing.
        let out = suite.run(&["-n", "2", "-v", "--max-worker-restart", "0"]);
        let mut c = Check::new(format!("{how} in {hook}"), &out);
        let ids: Vec<String> = (0..8)
            .map(|n| format!("test_ok.py::test_ok[{n}]"))
            .collect();
        let finals = check_invariant(&mut c, &ids, 1);
        c.expect(
            finals.len() == 8 && finals.values().all(|w| w == "PASSED"),
            format!("outcomes {finals:?}, want 8 PASSED"),
        );
        let when = if hook == "pytest_sessionfinish" {
            "after its last test, while ending its session"
        } else {
            "after its session ended"
        };
        for w in ["gw0", "gw1"] {
            c.line(&format!("xdist: worker {w} crashed {when} ({cause})"));
        }
        c.no_line("crashed while running");
        c.no_line("replacing crashed worker");
        c.no_line("restarting disabled");
        c.summary(&[("passed", 8)]);
        c.exit(1);
        c.finish();
    }
}

#[test]
fn garbage_on_the_protocol_channel() {
    let suite = Suite::new("garbage");
    let out = suite.run(&["-n", "2", "-v"]);
    let mut c = Check::new("garbage on the channel", &out);
    let faults = [
        (
            "test_garbage.py::test_oversized_header",
            "protocol error: frame of 1734439522 bytes exceeds the 67108864-byte limit",
        ),
        (
            "test_garbage.py::test_not_json",
            "protocol error: malformed message: expected value",
        ),
        (
            "test_garbage.py::test_unknown_message",
            "protocol error: malformed message: unknown variant `no-such-event`",
        ),
        (
            "test_garbage.py::test_truncated_frame",
            "protocol error: channel closed in the middle of a frame (3 of 100 bytes)",
        ),
    ];
    let mut ids: Vec<String> = (0..6)
        .map(|n| format!("test_garbage.py::test_ok[{n}]"))
        .collect();
    ids.extend(faults.iter().map(|(id, _)| id.to_string()));
    let finals = check_invariant(&mut c, &ids, 1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (id, msg) in faults {
        c.expect(
            finals.get(id).map(String::as_str) == Some("FAILED"),
            format!("{id}: outcome {:?}, want FAILED", finals.get(id)),
        );
        let workers = crash_workers(&out.stdout, id);
        c.expect(workers.len() == 1, format!("no crash line for {id}"));
        if let Some(w) = workers.first() {
            let head = format!("worker '{w}' crashed while running '{id}'");
            let at = lines.iter().position(|l| *l == head).unwrap_or(0);
            c.expect(
                lines[at..].iter().take(4).any(|l| l.starts_with(msg)),
                format!("no `{msg}` line after `{head}`"),
            );
        }
        expect_ran_once(&mut c, &suite, id);
    }
    c.summary(&[("failed", 4), ("passed", 6)]);
    c.exit(1);
    c.finish();
}

/// Runs `-k filter` of the `channel` suite: the `faulty` tests must each fail as their
/// worker's crash with a line starting with the given cause, every other test passes, and
/// the run ends within `RUN_TIMEOUT` (without the fixes, it never ends).
/// `deselected`: the suite's other tests. `swallowing`: a fault may swallow the start of
/// the next test on that worker (the controller never saw it begin), which then runs again.
fn channel_fault_run(
    filter: &str,
    faulty: &[(&str, &str)],
    others: &[String],
    deselected: u64,
    swallowing: bool,
) {
    let suite = Suite::new("channel");
    let out = suite.run(&["-n", "2", "-v", "-k", filter]);
    let mut c = Check::new(format!("channel faults: -k {filter}"), &out);
    let mut ids: Vec<String> = others.to_vec();
    ids.extend(faulty.iter().map(|(id, _)| id.to_string()));
    let finals = check_invariant(&mut c, &ids, 1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (id, cause) in faulty {
        c.expect(
            finals.get(*id).map(String::as_str) == Some("FAILED"),
            format!("{id}: outcome {:?}, want FAILED", finals.get(*id)),
        );
        let workers = crash_workers(&out.stdout, id);
        c.expect(workers.len() == 1, format!("no crash line for {id}"));
        if let Some(w) = workers.first() {
            let head = format!("worker '{w}' crashed while running '{id}'");
            let at = lines.iter().position(|l| *l == head).unwrap_or(0);
            c.expect(
                lines[at..].iter().take(6).any(|l| l.starts_with(cause)),
                format!("no line starting with `{cause}` after `{head}`"),
            );
        }
        let runs = count_runs(&suite.runs(), id);
        let most = if swallowing { 2 } else { 1 };
        c.expect((1..=most).contains(&runs), format!("{id} ran {runs} times"));
    }
    for id in others {
        c.expect(
            finals.get(id).map(String::as_str) == Some("PASSED"),
            format!("{id}: outcome {:?}, want PASSED", finals.get(id)),
        );
    }
    c.line("replacing crashed worker ");
    c.summary(&[
        ("failed", faulty.len() as u64),
        ("passed", others.len() as u64),
        ("deselected", deselected),
    ]);
    c.exit(1);
    c.finish();
}

/// The start of a frame and nothing more, at several sizes: the frame stalls (or what
/// follows is garbage), a protocol error of the test that wrote it, in bounded time.
#[test]
fn partial_frames_on_the_channel_end_in_bounded_time() {
    let faulty: Vec<(String, &str)> = ["100", "1048576", "62914560"]
        .iter()
        .map(|n| format!("test_frames.py::test_frame_header_only[{n}]"))
        .chain(["test_frames.py::test_half_a_header".to_string()])
        .map(|id| (id, "protocol error: "))
        .collect();
    let faulty: Vec<(&str, &str)> = faulty.iter().map(|(id, c)| (id.as_str(), *c)).collect();
    let others: Vec<String> = (0..4)
        .map(|n| format!("test_frames.py::test_ok[{n}]"))
        .collect();
    channel_fault_run("test_frames", &faulty, &others, 39, true);
}

/// A test that closes or replaces the worker's channel descriptors: the worker says so and
/// exits after that test (or is killed once its event channel is gone), a crash of that
/// test; the tests after it run on a replacement.
#[test]
fn broken_channel_descriptors_end_the_worker() {
    let lost = "xdist worker: channel lost: ";
    let faulty = [
        ("test_fds.py::test_dup2_stdout_over_events", lost),
        (
            "test_fds.py::test_dup2_over_events_then_wait",
            "channel lost: the worker's event channel was closed or replaced",
        ),
        ("test_fds.py::test_close_commands", lost),
        ("test_fds.py::test_close_events", lost),
        ("test_fds.py::test_devnull_over_commands", lost),
    ];
    let others: Vec<String> = (0..4)
        .map(|n| format!("test_fds.py::test_ok[{n}]"))
        .chain((0..30).map(|n| format!("test_fds.py::test_later[{n}]")))
        .collect();
    channel_fault_run("test_fds", &faulty, &others, 8, false);
}

/// Tests that fork, in a test, a fixture's setup or teardown, from a thread, and with
/// multiprocessing: every test passes once, children that return into pytest end there
/// (none runs a test again or waits for work), and no process outlives the run.
#[test]
fn forked_children_never_outlive_the_run() {
    for log_cli in ["false", "true"] {
        forked_children_run(log_cli);
    }
}

fn forked_children_run(log_cli: &str) {
    let suite = Suite::new("fork");
    let opt = format!("log_cli={log_cli}");
    let out = suite.run(&["-n", "2", "-v", "-o", &opt]);
    let mut c = Check::new(format!("tests that fork, {opt}"), &out);
    let mut ids: Vec<String> = [
        "test_child_returns",
        "test_child_raises",
        "test_child_returns_not_waited_for",
        "test_fork_in_setup",
        "test_fork_in_teardown",
        "test_fork_from_a_thread",
        "test_child_ends_itself",
        "test_multiprocessing_fork",
    ]
    .iter()
    .map(|t| format!("test_fork.py::{t}"))
    .collect();
    ids.extend((0..6).map(|n| format!("test_fork.py::test_later[{n}]")));
    let finals = check_invariant(&mut c, &ids, 1);
    c.expect(
        finals.len() == ids.len() && finals.values().all(|w| w == "PASSED"),
        format!("outcomes {finals:?}, want all PASSED"),
    );
    // A child that ran on into pytest would have started the worker's next tests again.
    for id in &ids {
        let n = count_runs(&suite.runs(), id);
        c.expect(n == 1, format!("{id} started {n} times"));
    }
    c.no_line("crashed");
    c.summary(&[("passed", ids.len() as u64)]);
    c.exit(0);
    c.finish();
}

// ---------------------------------------------------------------------------
// Interrupts
// ---------------------------------------------------------------------------

fn interrupt_once(sig: i32, name: &str) {
    let suite = Suite::new("slow");
    let run = suite.start(&["-n", "2", "-v"]);
    let started = suite.wait_runs(3, Duration::from_secs(15));
    let sent_at = Instant::now();
    run.signal(sig);
    let out = run.wait(RUN_TIMEOUT);
    let mut c = Check::new(format!("{name} during a run"), &out);
    c.expect(started, "tests never started");
    let ids: Vec<String> = (0..12)
        .map(|n| format!("test_slow.py::test_slow[{n}]"))
        .collect();
    let (map, unknown) = outcomes(&out.stdout, &ids);
    c.expect(
        unknown.is_empty(),
        format!("unknown outcome lines {unknown:?}"),
    );
    // Running tests finish (1 s each, well within the grace period) and are shown.
    let runs = suite.runs();
    for id in &ids {
        let ran = count_runs(&runs, id);
        let shown = &map[id];
        c.expect(ran <= 1, format!("{id} ran {ran} times"));
        c.expect(
            shown.len() == ran && shown.iter().all(|w| w == "PASSED"),
            format!("{id}: ran {ran} times, outcome lines {shown:?}"),
        );
    }
    c.expect(
        runs.len() < ids.len(),
        "every test ran: scheduling did not stop",
    );
    c.line("KeyboardInterrupt");
    c.summary(&[("passed", runs.len() as u64)]);
    c.exit(2);
    c.expect(
        sent_at.elapsed() < Duration::from_secs(5),
        format!("took {:.1?} after the signal", sent_at.elapsed()),
    );
    c.finish();
}

#[test]
fn ctrl_c_lets_running_tests_finish() {
    interrupt_once(libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_acts_like_ctrl_c() {
    interrupt_once(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sighup_acts_like_ctrl_c() {
    interrupt_once(libc::SIGHUP, "SIGHUP");
}

/// The hidden siblings `--report-log report.jsonl` writes before renaming them into place.
fn report_log_temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".report.jsonl.xdist-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A complete report log: its last line is the `SessionFinish` record.
fn report_log_finished(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("report.jsonl")).is_ok_and(|log| {
        log.lines()
            .last()
            .is_some_and(|l| l.contains("SessionFinish"))
    })
}

#[test]
fn sighup_at_any_moment_completes_the_report_log() {
    // While workers start, once the first test runs, after several.
    for runs in [0, 1, 5] {
        let suite = Suite::new("slow");
        let run = suite.start(&["-n", "2", "-v", "--report-log", "report.jsonl"]);
        let started = match runs {
            0 => {
                std::thread::sleep(Duration::from_millis(300));
                true
            }
            n => suite.wait_runs(n, Duration::from_secs(15)),
        };
        run.signal(libc::SIGHUP);
        let out = run.wait(RUN_TIMEOUT);
        let mut c = Check::new(format!("SIGHUP after {runs} tests started"), &out);
        c.expect(started, "tests never started");
        c.exit(2);
        c.expect(
            report_log_finished(&suite.dir),
            "report.jsonl missing or without its SessionFinish line",
        );
        let left = report_log_temp_files(&suite.dir);
        c.expect(left.is_empty(), format!("temp files left: {left:?}"));
        c.finish();
    }
}

#[test]
fn report_log_temp_files_of_killed_runs_are_removed_by_the_next_run() {
    let suite = Suite::new("slow");
    for _ in 0..2 {
        let run = suite.start(&["-n", "2", "--report-log", "report.jsonl"]);
        let started = suite.wait_runs(suite.runs().len() + 1, Duration::from_secs(15));
        run.signal(libc::SIGKILL);
        let out = run.wait(RUN_TIMEOUT);
        let mut c = Check::new("SIGKILL during a run", &out);
        c.expect(started, "tests never started");
        c.finish();
    }
    // What a SIGKILL cannot help leaving, the next run removes: the second killed run
    // removed the first one's.
    assert_eq!(report_log_temp_files(&suite.dir).len(), 1);
    let out = suite.run(&["-n", "2", "-k", "3", "--report-log", "report.jsonl"]);
    let mut c = Check::new("the run after two killed ones", &out);
    c.exit(0);
    c.expect(report_log_finished(&suite.dir), "report.jsonl incomplete");
    let left = report_log_temp_files(&suite.dir);
    c.expect(left.is_empty(), format!("temp files left: {left:?}"));
    c.finish();
}

#[test]
fn second_ctrl_c_kills_at_once() {
    let suite = Suite::new("stuck");
    let run = suite.start(&["-n", "2", "-v"]);
    // Both workers are inside a 60 s test.
    let started = suite.wait_runs(2, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(200));
    run.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let second_at = Instant::now();
    run.signal(libc::SIGINT);
    let out = run.wait(RUN_TIMEOUT);
    let mut c = Check::new("second SIGINT", &out);
    c.expect(started, "tests never started");
    c.expect(
        second_at.elapsed() < Duration::from_secs(3),
        format!("took {:.1?} after the second SIGINT", second_at.elapsed()),
    );
    c.line("KeyboardInterrupt");
    c.no_line("crashed while running");
    c.no_line("replacing crashed worker");
    c.exit(2);
    c.finish();
}

#[test]
fn keyboard_interrupt_inside_a_test() {
    let suite = Suite::new("kbint");
    let out = suite.run(&["-n", "2", "-v"]);
    let mut c = Check::new("KeyboardInterrupt raised by a test", &out);
    c.line("received keyboard-interrupt");
    c.no_line("crashed while running");
    c.exit(2);
    let mut ids: Vec<String> = (0..4)
        .map(|n| format!("test_kbint.py::test_ok[{n}]"))
        .collect();
    ids.push("test_kbint.py::test_interrupt".into());
    ids.extend((0..4).map(|n| format!("test_kbint.py::test_later[{n}]")));
    let (map, unknown) = outcomes(&out.stdout, &ids);
    c.expect(
        unknown.is_empty(),
        format!("unknown outcome lines {unknown:?}"),
    );
    for (id, words) in &map {
        c.expect(words.len() <= 1, format!("{id}: outcomes {words:?}"));
    }
    c.finish();
}

// ---------------------------------------------------------------------------
// Worker INTERNALERROR: exit 3
// ---------------------------------------------------------------------------

#[test]
fn worker_internal_error_exits_3() {
    let suite = Suite::new("internal_error");
    let out = suite.run(&["-n", "2", "-v"]);
    let mut c = Check::new("INTERNALERROR in pytest_runtest_logreport", &out);
    c.line("INTERNALERROR> RuntimeError: boom from pytest_runtest_logreport");
    c.exit(3);
    c.finish();
}

#[test]
fn worker_internal_error_in_collection_finish_exits_3() {
    let suite = Suite::new("internal_error");
    std::fs::write(
        suite.dir.join("conftest.py"),
        "def pytest_collection_finish(session):\n    raise RuntimeError('boom from pytest_collection_finish')\n",
    )
    .unwrap();
    let out = suite.run(&["-n", "2", "-v"]);
    let mut c = Check::new("INTERNALERROR in pytest_collection_finish", &out);
    c.line("boom from pytest_collection_finish");
    c.exit(3);
    c.finish();
}

// ---------------------------------------------------------------------------
// The invariant on several fault suites at once
// ---------------------------------------------------------------------------

/// Every collected test ends with exactly one final outcome, and every report a worker
/// sent before dying is shown: with 3 workers and `--dist load`, in a suite where workers
/// die mid-run, every test that started (runs.log) is shown exactly once.
#[test]
fn invariant_one_final_outcome_per_test() {
    let suite = Suite::new("crash3");
    let out = suite.run(&["-n", "3", "--maxschedchunk", "1", "-v"]);
    let mut c = Check::new("invariant, -n 3", &out);
    let ids = crash3_ids();
    let finals = check_invariant(&mut c, &ids, 1);
    c.expect(
        finals.len() == ids.len(),
        format!("{} of {} tests have an outcome", finals.len(), ids.len()),
    );
    let runs = suite.runs();
    for id in &ids {
        let n = count_runs(&runs, id);
        c.expect(n == 1, format!("{id} ran {n} times"));
    }
    c.summary(&[("failed", 3), ("passed", 47)]);
    c.exit(1);
    c.finish();
}

/// Every fault above again with forked workers (`--start fork`): the zygote included, no
/// process may be left behind.
mod fork_mode {
    macro_rules! in_fork_mode {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                super::START.with(|m| m.set("fork"));
                super::$name();
            }
        )*};
    }

    in_fork_mode!(
        crashes_dist_load,
        crashes_dist_loadscope,
        crashes_dist_loadfile,
        crashes_dist_loadgroup,
        crashes_dist_worksteal,
        crashes_dist_each,
        max_worker_restart_0_disables_restarting,
        max_worker_restart_limit_reached,
        worker_killed_from_outside_mid_test,
        hanging_test_killed_with_its_stack,
        // Not `conftest_crash_in_one_worker`: forked workers import conftests once, in the
        // fork server, not one by one (README, "Fork mode").
        garbage_on_the_protocol_channel,
        ctrl_c_lets_running_tests_finish,
        sigterm_acts_like_ctrl_c,
        second_ctrl_c_kills_at_once,
        keyboard_interrupt_inside_a_test,
        worker_internal_error_exits_3,
        worker_internal_error_in_collection_finish_exits_3,
        invariant_one_final_outcome_per_test,
        controller_killed_leaves_nothing_behind,
    );
}

/// SIGKILL of the controller mid-run: its workers (and a fork server) die with it.
#[test]
fn controller_killed_leaves_nothing_behind() {
    let suite = Suite::new("stuck");
    let run = suite.start(&["-n", "2", "-v"]);
    let started = suite.wait_runs(2, Duration::from_secs(15));
    run.signal(libc::SIGKILL);
    let out = run.wait(RUN_TIMEOUT);
    let mut c = Check::new("SIGKILL of the controller", &out);
    c.expect(started, "tests never started");
    c.expect(out.code.is_none(), "the controller was not killed");
    c.finish();
}
