//! Workers from `--tx` specs: local (`popen`, with `//python=`, `//chdir=`, `//env:`,
//! `//nice=`), over the system `ssh` client (`ssh=[user@]host`), or through a connection to
//! `xdist serve` (`socket=host:port`). The protocol is the same length-prefixed frames on
//! every transport; only how the byte stream is obtained differs.
//!
//! SSH: `ssh -T -o BatchMode=yes [-F ssh_config] [-J jump] [user@]host -- <command>` where the
//! command (run by the remote user's shell) creates and enters the work directory, then
//! `exec env NAME=value... [nice -n N] PYTHON -u -c '<bootstrap>'`. The channel is the SSH
//! session's stdin/stdout (the bootstrap moves it off fds 0/1); stderr stays stderr.
//!
//! Exec: `<command> -u -c '<prelude><bootstrap>'`, the command being any launcher that starts
//! Python (`docker exec -i box python3`); the prelude (Python, since the launcher may have no
//! shell) sets `//env:`, enters `//chdir=` and applies `//nice=`. The channel is the
//! command's stdin/stdout, as for ssh. The launcher gets its own process group, killed
//! whole once the launcher ends, so a launcher that dies leaves nothing behind.
//!
//! Socket: one JSON hello frame `{token, python, chdir, env, nice}` answered by
//! `{ok, error}`; then the connection is the worker's channel.

use std::ffi::OsString;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use xdist_core::frame::{read_frame, write_frame};
use xdist_core::protocol::Bootstrap;
use xdist_core::spec::{Gateway, XSpec};

use crate::bootstrap::BOOTSTRAP;
use crate::local::{
    read_channel, spawn_channel_reader, spawn_lines, spawn_local, spawn_waiter_then,
    write_first_frames, Killer, LocalSpawn, SharedWriter, REMOTE_FRAME_STALL,
};
use crate::{ExitKind, SpawnError, Stream, WorkerHandle, WorkerMsg};

/// How long connecting to a socket worker server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A worker to start from a spec.
pub struct WorkerSpawn {
    pub key: u32,
    pub spec: XSpec,
    /// The controller's interpreter: used for `popen` specs without `//python=`.
    pub python: PathBuf,
    /// The controller's working directory (base of a relative local `chdir=`).
    pub cwd: PathBuf,
    /// Environment for the worker (on top of the spec's `//env:`).
    pub env: Vec<(OsString, OsString)>,
    pub bootstrap: Bootstrap,
    pub code: Option<String>,
    /// The shared secret for `socket=` workers.
    pub token: Option<String>,
}

/// The first frame a socket client sends to `xdist serve`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Hello {
    pub token: String,
    #[serde(default)]
    pub python: Option<String>,
    #[serde(default)]
    pub chdir: Option<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub nice: Option<i32>,
}

/// The server's answer to a [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct HelloReply {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// Starts a worker for `s.spec`; its messages reach `tx` once [`WorkerHandle::start`] is called.
pub fn spawn_worker(
    mut s: WorkerSpawn,
    tx: &Sender<WorkerMsg>,
) -> Result<WorkerHandle, SpawnError> {
    let mut env = std::mem::take(&mut s.env);
    env.extend(
        s.spec
            .env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    if s.spec.dont_write_bytecode {
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
    }
    match &s.spec.gateway {
        Gateway::Popen => spawn_popen(s, env, tx),
        Gateway::Ssh { .. } => {
            let target = ssh_target(&s.spec).unwrap_or_default().to_string();
            let mut cmd = Command::new("ssh");
            cmd.args(ssh_args(&s.spec))
                .arg(&target)
                .arg("--")
                .arg(remote_command(&s.spec, &env));
            let label = format!("ssh {target}");
            spawn_piped(s.key, cmd, label, false, &s.bootstrap, s.code, tx)
        }
        Gateway::Exec { argv } => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| SpawnError::Remote(format!("{}: exec= needs a command", s.spec)))?;
            let mut cmd = Command::new(program);
            cmd.args(args)
                .arg("-u")
                .arg("-c")
                .arg(exec_program(&s.spec, &env));
            spawn_piped(s.key, cmd, argv.join(" "), true, &s.bootstrap, s.code, tx)
        }
        Gateway::Socket { host, port } => {
            let hello = socket_hello(&s, &env);
            spawn_socket(s.key, host, *port, &hello, &s.bootstrap, s.code, tx)
        }
    }
}

/// A `popen` worker: a local process in the spec's `chdir` (created when missing).
fn spawn_popen(
    s: WorkerSpawn,
    env: Vec<(OsString, OsString)>,
    tx: &Sender<WorkerMsg>,
) -> Result<WorkerHandle, SpawnError> {
    let cwd = match &s.spec.chdir {
        Some(d) => {
            let dir = s.cwd.join(d);
            std::fs::create_dir_all(&dir).map_err(|e| {
                SpawnError::Remote(format!(
                    "failed to create chdir={} for {}: {e}",
                    dir.display(),
                    s.spec
                ))
            })?;
            dir
        }
        None => s.cwd,
    };
    spawn_local(
        LocalSpawn {
            key: s.key,
            python: s.spec.python.as_ref().map_or(s.python, PathBuf::from),
            cwd,
            env,
            bootstrap: s.bootstrap,
            code: s.code,
            nice: s.spec.nice,
        },
        tx,
    )
}

/// What a socket worker asks `xdist serve` for.
fn socket_hello(s: &WorkerSpawn, env: &[(OsString, OsString)]) -> Hello {
    Hello {
        token: s.token.clone().unwrap_or_default(),
        python: s.spec.python.clone(),
        chdir: s.spec.chdir.clone(),
        env: env
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect(),
        nice: s.spec.nice,
    }
}

/// Quotes `s` for a POSIX shell (the remote user's login shell runs the ssh command).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%_+=:,./-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `ssh` client arguments (without the remote command) for a spec: batch mode (never
/// prompt), no tty, the spec's `ssh_config` and jump host. The same arguments carry rsync.
pub fn ssh_args(spec: &XSpec) -> Vec<String> {
    let mut a: Vec<String> = vec!["-T".into(), "-o".into(), "BatchMode=yes".into()];
    if let Some(cfg) = &spec.ssh_config {
        a.push("-F".into());
        a.push(cfg.clone());
    }
    if let Some(j) = &spec.jump {
        a.push("-J".into());
        a.push(j.clone());
    }
    a
}

/// The ssh target (`[user@]host`) of a spec, if it is an ssh spec.
pub fn ssh_target(spec: &XSpec) -> Option<&str> {
    match &spec.gateway {
        Gateway::Ssh { target } => Some(target),
        _ => None,
    }
}

/// The shell command the remote side runs.
pub fn remote_command(spec: &XSpec, env: &[(OsString, OsString)]) -> String {
    let mut cmd = String::new();
    if let Some(dir) = spec.workdir() {
        let d = shell_quote(dir);
        cmd.push_str(&format!("mkdir -p {d} && cd {d} && "));
    }
    cmd.push_str("exec env");
    for (k, v) in env {
        cmd.push(' ');
        cmd.push_str(&shell_quote(&format!(
            "{}={}",
            k.to_string_lossy(),
            v.to_string_lossy()
        )));
    }
    if let Some(n) = spec.nice {
        cmd.push_str(&format!(" nice -n {n}"));
    }
    let python = spec.python.as_deref().unwrap_or("python3");
    cmd.push_str(&format!(
        " {} -u -c {}",
        shell_quote(python),
        shell_quote(BOOTSTRAP)
    ));
    cmd
}

/// The `-c` program of an `exec=` worker: the spec's environment, work directory and
/// niceness applied in Python (string literals as JSON, which Python reads the same), then
/// the bootstrap.
pub fn exec_program(spec: &XSpec, env: &[(OsString, OsString)]) -> String {
    let json = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "''".into());
    let mut p = String::from("import os,sys\n");
    let vars: Vec<String> = env
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                json(&k.to_string_lossy()),
                json(&v.to_string_lossy())
            )
        })
        .collect();
    if !vars.is_empty() {
        p.push_str(&format!("os.environ.update({{{}}})\n", vars.join(",")));
    }
    if spec.dont_write_bytecode {
        p.push_str("sys.dont_write_bytecode=True\n");
    }
    if let Some(dir) = spec.workdir() {
        let d = json(dir);
        p.push_str(&format!("os.makedirs({d},exist_ok=True);os.chdir({d})\n"));
    }
    if let Some(n) = spec.nice {
        p.push_str(&format!("os.nice({n})\n"));
    }
    p.push_str(BOOTSTRAP);
    p
}

/// Starts `cmd` with piped stdio as a worker whose channel is its stdin/stdout (ssh, exec):
/// writes the code and bootstrap frames, reads events, stderr lines and its exit.
/// `kill_group`: once the process ends, kill its whole process group (what a local
/// launcher started must not outlive it).
fn spawn_piped(
    key: u32,
    mut cmd: Command,
    label: String,
    kill_group: bool,
    bootstrap: &Bootstrap,
    code: Option<String>,
    tx: &Sender<WorkerMsg>,
) -> Result<WorkerHandle, SpawnError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Own process group (Ctrl-C reaches only the controller); die with it.
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Start {
        python: label,
        source,
    })?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let writer: SharedWriter = Arc::new(Mutex::new(None));
    if let Some(stdin) = stdin {
        // The session takes a moment to come up: write the first frames off the caller's
        // thread (so many workers connect at once); commands wait on the lock.
        let mut guard = writer.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some(Box::new(stdin));
        drop(guard);
        let w = writer.clone();
        let boot = bootstrap.clone();
        thread::Builder::new()
            .name(format!("xdist-hello-{key}"))
            .spawn(move || {
                let mut guard = w.lock().unwrap_or_else(|e| e.into_inner());
                let ok = guard
                    .as_mut()
                    .is_some_and(|w| write_first_frames(&mut **w, code.as_deref(), &boot));
                if !ok {
                    *guard = None;
                }
            })
            .ok();
    }
    if let Some(out) = child.stdout.take() {
        spawn_channel_reader(key, out, REMOTE_FRAME_STALL, tx.clone());
    }
    // The worker's own stdout goes to its stderr (the bootstrap moves it): no stdout lines.
    let _ = tx.send(WorkerMsg::OutputClosed(key, Stream::Stdout));
    if let Some(err) = child.stderr.take() {
        spawn_lines(key, Stream::Stderr, err, tx.clone());
    }
    let after_exit = move || {
        if kill_group {
            // SAFETY: kill(2) on the process group this launcher led; ESRCH when empty.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    };
    spawn_waiter_then(key, child, tx.clone(), after_exit);
    Ok(WorkerHandle {
        key,
        pid,
        writer,
        killer: Killer::Pid(pid),
        start: None,
    })
}

/// Connects to `xdist serve` and says hello; the stream is then the worker's channel.
pub fn connect(host: &str, port: u16, hello: &Hello) -> Result<TcpStream, SpawnError> {
    let addr = format!("{host}:{port}");
    let remote = |m: String| SpawnError::Remote(format!("socket={addr}: {m}"));
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| remote(format!("cannot resolve: {e}")))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        remote(format!(
            "cannot connect: {}",
            last.map_or("no address".to_string(), |e| e.to_string())
        ))
    })?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(CONNECT_TIMEOUT));
    let payload = serde_json::to_vec(hello).unwrap_or_default();
    write_frame(&mut stream, &payload).map_err(|e| remote(format!("hello failed: {e}")))?;
    let mut buf = Vec::new();
    read_frame(&mut stream, &mut buf).map_err(|e| {
        remote(format!(
            "the server closed the connection during the hello ({e}); is the token right?"
        ))
    })?;
    let reply: HelloReply =
        serde_json::from_slice(&buf).map_err(|e| remote(format!("bad hello reply: {e}")))?;
    if !reply.ok {
        return Err(remote(format!(
            "refused: {}",
            reply.error.unwrap_or_else(|| "no reason given".into())
        )));
    }
    let _ = stream.set_read_timeout(None);
    Ok(stream)
}

fn spawn_socket(
    key: u32,
    host: &str,
    port: u16,
    hello: &Hello,
    bootstrap: &Bootstrap,
    code: Option<String>,
    tx: &Sender<WorkerMsg>,
) -> Result<WorkerHandle, SpawnError> {
    let stream = connect(host, port, hello)?;
    let clone = |s: &TcpStream| {
        s.try_clone()
            .map_err(|e| SpawnError::Remote(format!("socket={host}:{port}: {e}")))
    };
    let reader = clone(&stream)?;
    let killer = clone(&stream)?;
    let mut w: Box<dyn Write + Send> = Box::new(stream);
    let ok = write_first_frames(&mut *w, code.as_deref(), bootstrap);
    let writer: SharedWriter = Arc::new(Mutex::new(ok.then_some(w)));
    // No process here: the end of the connection is the end of the worker.
    let tx2 = tx.clone();
    thread::Builder::new()
        .name(format!("xdist-sock-{key}"))
        .spawn(move || {
            read_channel(key, reader, REMOTE_FRAME_STALL, tx2.clone());
            let _ = tx2.send(WorkerMsg::OutputClosed(key, Stream::Stdout));
            let _ = tx2.send(WorkerMsg::OutputClosed(key, Stream::Stderr));
            let _ = tx2.send(WorkerMsg::Exited(key, ExitKind::Disconnected));
        })
        .ok();
    Ok(WorkerHandle {
        key,
        pid: 0,
        writer,
        killer: Killer::Socket(killer),
        start: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdist_core::spec::parse_spec;

    #[test]
    fn quotes_for_the_remote_shell() {
        assert_eq!(shell_quote("abc/d.py"), "abc/d.py");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn builds_the_remote_command() {
        let spec = parse_spec("--tx", "ssh=u@h//python=/opt/py 3//chdir=w d//nice=3").unwrap();
        let cmd = remote_command(&spec, &[("A".into(), "x y".into())]);
        assert!(
            cmd.starts_with("mkdir -p 'w d' && cd 'w d' && exec env 'A=x y' nice -n 3 '/opt/py 3' -u -c 'import os,sys"),
            "{cmd}"
        );
        let spec = parse_spec("--tx", "ssh=h//ssh_config=/c").unwrap();
        assert!(remote_command(&spec, &[]).starts_with(
            "mkdir -p pyexecnetcache && cd pyexecnetcache && exec env python3 -u -c "
        ));
        assert_eq!(ssh_args(&spec), ["-T", "-o", "BatchMode=yes", "-F", "/c"]);
    }

    #[test]
    fn builds_the_exec_prelude() {
        let spec = parse_spec(
            "--tx",
            "exec=docker exec -i b python3//chdir=/w \"d//nice=2",
        )
        .unwrap();
        let p = exec_program(&spec, &[("A".into(), "x'y".into())]);
        assert!(
            p.starts_with("import os,sys\nos.environ.update({\"A\":\"x'y\"})\nos.makedirs(\"/w \\\"d\",exist_ok=True);os.chdir(\"/w \\\"d\")\nos.nice(2)\nimport os,sys"),
            "{p}"
        );
        assert!(p.ends_with(BOOTSTRAP));
    }
}
