//! Beyond one machine: real `ssh=` workers against an `sshd` this harness starts on loopback
//! (throw-away host and user keys in a temp dir, `StrictHostKeyChecking=no` with a temp
//! known_hosts, everything through an `ssh_config` passed as `//ssh_config=`), rsync of the
//! project, a remote worker killed mid-run, `xdist serve` with and without the token, and
//! `--shard` covering the suite exactly once.
//!
//! The ssh tests need Debian's `openssh-server` and `rsync`. Without them they print why and
//! pass, unless `XDIST_REQUIRE_SSHD` is set (as `.ci/run` does), where they fail.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const XDIST: &str = env!("CARGO_BIN_EXE_xdist");
const TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// The project every test runs
// ---------------------------------------------------------------------------

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `src/mylib` and `tests/` importing it through `tests/conftest.py` (so it works wherever
/// the two directories are copied together). `CRASH_HERE=1` makes one test kill its worker.
fn make_project(dir: &Path) {
    write(
        &dir.join("src/mylib/__init__.py"),
        "def add(a, b):\n    return a + b\n",
    );
    write(
        &dir.join("tests/conftest.py"),
        "import pathlib, sys\nsys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / 'src'))\n",
    );
    write(
        &dir.join("tests/test_lib.py"),
        r#"import os, signal, time
import pytest
from mylib import add

@pytest.mark.parametrize("n", range(12))
def test_add(n):
    time.sleep(0.01)
    assert add(n, 1) == n + 1

def test_fails():
    assert add(1, 1) == 3

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

def test_worker_env():
    assert os.environ.get("PYTEST_XDIST_WORKER", "serial")

def test_crash_here():
    if os.environ.get("CRASH_HERE") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
"#,
    );
    write(
        &dir.join("tests/test_more.py"),
        "import pytest\n\n@pytest.mark.parametrize('x', 'abcdefgh')\ndef test_letters(x):\n    assert x.isalpha()\n",
    );
}

fn serial_outcomes(python: &Path, dir: &Path) -> BTreeMap<(String, String), usize> {
    outcome_multiset(&parse_serial_v(
        &run_serial_v(python, dir, &["tests"]).stdout,
    ))
}

fn dist_outcomes(out: &RunOutput) -> BTreeMap<(String, String), usize> {
    outcome_multiset(&parse_dist_v(&out.stdout))
}

// ---------------------------------------------------------------------------
// sshd on loopback
// ---------------------------------------------------------------------------

struct Sshd {
    child: Child,
    dir: PathBuf,
    ssh_config: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts sshd, or says why not: None means skip (only when `XDIST_REQUIRE_SSHD` is unset).
fn start_sshd(name: &str) -> Option<Sshd> {
    let sshd = sshd_or_skip(name)?;
    let (dir, ssh_config, port) = write_sshd_files(name);
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sshd");
    let server = Sshd {
        child,
        dir,
        ssh_config,
    };
    wait_for_login(&server, port);
    Some(server)
}

/// The sshd binary, or None (the test skips) when a tool is missing and
/// XDIST_REQUIRE_SSHD is not set.
fn sshd_or_skip(name: &str) -> Option<PathBuf> {
    let required = std::env::var_os("XDIST_REQUIRE_SSHD").is_some_and(|v| !v.is_empty());
    let sshd = find_program("sshd", &["/usr/sbin", "/usr/local/sbin"]);
    let missing: Vec<&str> = [
        ("sshd", sshd.is_some()),
        ("ssh", find_program("ssh", &[]).is_some()),
        ("ssh-keygen", find_program("ssh-keygen", &[]).is_some()),
        ("rsync", find_program("rsync", &[]).is_some()),
    ]
    .iter()
    .filter(|(_, ok)| !ok)
    .map(|(n, _)| *n)
    .collect();
    if !missing.is_empty() {
        let why = format!(
            "{} not installed (Debian: apt-get install -y openssh-server rsync)",
            missing.join(", ")
        );
        if required {
            panic!("XDIST_REQUIRE_SSHD is set but {why}");
        }
        println!("SKIPPED {name}: {why}; set XDIST_REQUIRE_SSHD=1 to make this a failure");
        return None;
    }
    sshd
}

/// Keys, sshd_config and ssh_config for a loopback sshd on a free port.
fn write_sshd_files(name: &str) -> (PathBuf, PathBuf, u16) {
    let dir = scratch_dir(&format!("sshd-{name}"));
    for key in ["host_key", "id"] {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(dir.join(key))
            .status()
            .unwrap();
        assert!(st.success(), "ssh-keygen failed");
    }
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        let _ = std::fs::create_dir_all("/run/sshd"); // privilege separation directory
    }
    let port = free_port();
    let d = dir.display();
    write(
        &dir.join("sshd_config"),
        &format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel ERROR\n"
        ),
    );
    let ssh_config = dir.join("ssh_config");
    write(
        &ssh_config,
        &format!(
            "Host localhost\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/id\n\
             \x20 IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile {d}/known_hosts\n\
             \x20 LogLevel ERROR\n"
        ),
    );
    (dir, ssh_config, port)
}

/// Waits until our key logs in (sshd is up).
fn wait_for_login(server: &Sshd, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = Command::new("ssh")
            .arg("-F")
            .arg(&server.ssh_config)
            .args(["-o", "BatchMode=yes", "localhost", "true"])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sshd on port {port} never accepted our key"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The acceptance command: `xdist --tx 2*ssh=localhost//python=PY --rsyncdir src --rsyncdir
/// tests tests` gives serial pytest's outcomes.
#[test]
fn ssh_workers_with_rsync_match_serial_pytest() {
    let Some(sshd) = start_sshd("acceptance") else {
        return;
    };
    let py = test_python();
    let dir = scratch_dir("remote-acceptance");
    make_project(&dir);
    let expected = serial_outcomes(&py, &dir);
    let remote = sshd.dir.join("remote-home");
    let spec = format!(
        "2*ssh=localhost//python={}//ssh_config={}//chdir={}",
        py.display(),
        sshd.ssh_config.display(),
        remote.display()
    );
    let out = run_with_timeout(
        clean_command(XDIST, &dir).args([
            "--tx",
            &spec,
            "--rsyncdir",
            "src",
            "--rsyncdir",
            "tests",
            "-v",
            "-p",
            "no:cacheprovider",
            "tests",
        ]),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{}", out.describe(4000));
    assert_eq!(dist_outcomes(&out), expected, "{}", out.describe(4000));
    assert!(
        out.stderr.contains(
            "The --rsyncdir command line argument and rsyncdirs config variable are deprecated."
        ),
        "{}",
        out.describe(2000)
    );
    // The copies landed in <chdir>/<root name>, and the rewritten `tests` arg found them.
    assert!(remote.join("src/mylib/__init__.py").exists());
    assert!(remote.join("tests/test_lib.py").exists());
    let workers: std::collections::BTreeSet<_> = parse_dist_v(&out.stdout)
        .into_iter()
        .filter_map(|l| l.worker)
        .collect();
    assert_eq!(workers.len(), 2, "{}", out.describe(2000));
}

/// The default work directory (`pyexecnetcache` in the remote home) also works, with
/// `//id=` naming a worker; one popen worker mixed in.
#[test]
fn ssh_worker_in_the_default_work_directory_beside_a_popen_worker() {
    let Some(sshd) = start_sshd("default-workdir") else {
        return;
    };
    let py = test_python();
    let dir = scratch_dir("remote-default-workdir");
    make_project(&dir);
    let spec = format!(
        "ssh=localhost//python={}//ssh_config={}//id=far",
        py.display(),
        sshd.ssh_config.display()
    );
    let out = run_with_timeout(
        clean_command(XDIST, &dir).args([
            "--python",
            py.to_str().unwrap(),
            "--tx",
            &spec,
            "--tx",
            "popen",
            "--rsyncdir",
            "src",
            "--rsyncdir",
            "tests",
            "-p",
            "no:cacheprovider",
            "-rA",
            "tests",
        ]),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{}", out.describe(4000));
    assert!(
        out.stdout
            .contains("1 failed, 22 passed, 1 skipped, 1 xfailed"),
        "{}",
        out.describe(4000)
    );
}

/// A remote worker dies mid-run (SIGKILL inside a test): the test is reported as crashed,
/// the worker is replaced, every other test still runs.
#[test]
fn remote_worker_killed_mid_run_is_survived() {
    let Some(sshd) = start_sshd("crash") else {
        return;
    };
    let py = test_python();
    let dir = scratch_dir("remote-crash");
    make_project(&dir);
    let spec = format!(
        "2*ssh=localhost//python={}//ssh_config={}//chdir={}//env:CRASH_HERE=1",
        py.display(),
        sshd.ssh_config.display(),
        sshd.dir.join("w").display()
    );
    let out = run_with_timeout(
        clean_command(XDIST, &dir).args([
            "--tx",
            &spec,
            "--rsyncdir",
            "src",
            "--rsyncdir",
            "tests",
            "-v",
            "-p",
            "no:cacheprovider",
            "tests",
        ]),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{}", out.describe(4000));
    let got = dist_outcomes(&out);
    let crash = (
        "tests/test_lib.py::test_crash_here".to_string(),
        "FAILED".to_string(),
    );
    assert_eq!(got.get(&crash), Some(&1), "{}", out.describe(4000));
    assert!(
        out.stdout
            .contains("crashed while running 'tests/test_lib.py::test_crash_here'"),
        "{}",
        out.describe(4000)
    );
    assert!(
        out.stdout.contains("replacing crashed worker"),
        "{}",
        out.describe(4000)
    );
    assert!(
        out.stdout
            .contains("2 failed, 21 passed, 1 skipped, 1 xfailed"),
        "{}",
        out.describe(4000)
    );
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(token: &str, python: &Path, cwd: &Path) -> Server {
    let mut child = Command::new(XDIST)
        .args(["serve", "--listen", "127.0.0.1:0", "--python"])
        .arg(python)
        .env("XDIST_TOKEN", token)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("xdist serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Server { child, port }
}

/// `xdist serve` refuses a client without the token (raw hello and the xdist client) and
/// serves one with it; SIGTERM ends it cleanly.
#[test]
fn socket_server_requires_the_token() {
    let py = test_python();
    let dir = scratch_dir("remote-socket");
    make_project(&dir);
    let expected = serial_outcomes(&py, &dir);
    // No token at all: the server does not start.
    let out = run_with_timeout(
        clean_command(XDIST, &dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("XDIST_TOKEN"),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(4), "{}", out.describe(2000));
    assert!(
        out.stderr.contains("needs a shared token"),
        "{}",
        out.describe(2000)
    );

    let mut server = start_server("s3cret-token", &py, &dir);
    let port = server.port;
    // A raw client with an empty token gets a refusal, and nothing runs.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let hello = br#"{"token":""}"#;
    s.write_all(&(hello.len() as u32).to_be_bytes()).unwrap();
    s.write_all(hello).unwrap();
    let mut head = [0u8; 4];
    std::io::Read::read_exact(&mut s, &mut head).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
    std::io::Read::read_exact(&mut s, &mut body).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["ok"], false, "{reply}");
    // A client that sends nothing useful is dropped too.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();

    let spec = format!("2*socket=127.0.0.1:{port}");
    let base = |token: Option<&str>| {
        let mut c = clean_command(XDIST, &dir);
        c.args(["--tx", &spec, "-v", "-p", "no:cacheprovider", "tests"]);
        match token {
            Some(t) => c.env("XDIST_TOKEN", t),
            None => c.env_remove("XDIST_TOKEN"),
        };
        c
    };
    let out = run_with_timeout(&mut base(None), TIMEOUT);
    assert_eq!(out.code, Some(4), "{}", out.describe(2000));
    let out = run_with_timeout(&mut base(Some("wrong")), TIMEOUT);
    assert_eq!(out.code, Some(4), "{}", out.describe(2000));
    assert!(out.stderr.contains("refused"), "{}", out.describe(2000));
    let out = run_with_timeout(&mut base(Some("s3cret-token")), TIMEOUT);
    assert_eq!(out.code, Some(1), "{}", out.describe(4000));
    assert_eq!(dist_outcomes(&out), expected, "{}", out.describe(4000));

    // Clean shutdown on SIGTERM.
    // SAFETY: a pid we started.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            break;
        }
        assert!(Instant::now() < deadline, "xdist serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--shard K/4` (hash, and duration with a history) runs each test of the suite exactly
/// once over the four shards, with `--junitxml` per shard.
#[test]
fn shards_cover_the_suite_exactly_once() {
    let py = test_python();
    let dir = scratch_dir("remote-shard");
    make_project(&dir);
    let expected = serial_outcomes(&py, &dir);
    // A full run first records the duration history `--shard-by duration` balances with.
    let out = run_with_timeout(
        clean_command(XDIST, &dir).args(["--python", py.to_str().unwrap(), "-n", "2", "tests"]),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{}", out.describe(3000));
    // Every CI job starts from the same history (a restored cache); a shard's own run
    // rewrites it, so put it back before each.
    let history = dir.join(".pytest_cache/v/xdist/durations");
    let recorded = std::fs::read(&history).expect("duration history written");
    for by in ["hash", "duration"] {
        let mut union: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut junit_cases = 0;
        for k in 1..=4 {
            std::fs::write(&history, &recorded).unwrap();
            let xml = dir.join(format!("junit-{by}-{k}.xml"));
            let out = run_with_timeout(
                clean_command(XDIST, &dir).args([
                    "--python",
                    py.to_str().unwrap(),
                    "-n",
                    "2",
                    "--shard",
                    &format!("{k}/4"),
                    "--shard-by",
                    by,
                    "-v",
                    "--junitxml",
                    xml.to_str().unwrap(),
                    "tests",
                ]),
                TIMEOUT,
            );
            assert!(
                matches!(out.code, Some(0) | Some(1) | Some(5)),
                "{}",
                out.describe(3000)
            );
            for (key, n) in dist_outcomes(&out) {
                *union.entry(key).or_insert(0) += n;
            }
            let text = std::fs::read_to_string(&xml).unwrap_or_default();
            junit_cases += text.matches("<testcase ").count();
        }
        assert_eq!(union, expected, "--shard-by {by}");
        assert_eq!(
            junit_cases,
            expected.values().sum::<usize>(),
            "--shard-by {by}"
        );
    }
}

/// `--hang-timeout` on an ssh worker: xdist cannot signal the remote process, so it asks
/// over the channel for the stacks (they come back on the session's stderr), then ends the
/// session; the test is reported failed with its stack and the rest of the suite runs.
#[test]
fn remote_hang_is_cut_with_its_stack() {
    let Some(sshd) = start_sshd("hang") else {
        return;
    };
    let py = test_python();
    let dir = scratch_dir("remote-hang");
    write(&dir.join("tests/test_hang.py"), HANG_SUITE);
    let spec = format!(
        "2*ssh=localhost//python={}//ssh_config={}//chdir={}",
        py.display(),
        sshd.ssh_config.display(),
        sshd.dir.join("w").display()
    );
    let started = std::time::Instant::now();
    let out = run_with_timeout(
        clean_command(XDIST, &dir).args([
            "--tx",
            &spec,
            "--rsyncdir",
            "tests",
            "--hang-timeout",
            "2",
            "-p",
            "no:cacheprovider",
            "tests",
        ]),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{}", out.describe(4000));
    for needle in HANG_NEEDLES {
        assert!(
            out.stdout.contains(needle),
            "{needle}\n{}",
            out.describe(6000)
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{}",
        out.describe(2000)
    );
}
