//! The fork server ("zygote"): one local Python process configures pytest and collects once,
//! then forks a worker whenever the controller asks for one (the first workers and every
//! replacement after a crash).
//!
//! The zygote is started like a local worker (channel on fds 3/4) with the first worker's
//! bootstrap, plus the path of a local socket ([`interprocess`], in a private 0700
//! directory) and a per-run secret in its environment. Its channel then carries the fork
//! server's own small protocol (JSON objects, same 4-byte framing):
//! - zygote → controller: before `forkready`, what it reported after `ready` (the
//!   collection, its collection errors...) as ordinary worker event frames (JSON arrays),
//!   decoded once here; `forkready {items}` once collected (or `nofork {reason}`: spawn
//!   instead), `exited {key, code|signal}` for each child it reaps, `fork_failed {key, error}`;
//! - controller → zygote: `fork {key, env, nice}`.
//!
//! A forked child connects to the socket three times (its channel, stdout, stderr), each
//! opening with a hello frame `{secret, key, stream}`. The channel's first frame back is the
//! worker's own [`Bootstrap`]; from there on it is an ordinary worker channel, whose first
//! frame from the child (its own `ready`) is followed by the zygote's collection events: the
//! controller hears every worker report the collection, which travelled and was parsed once.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use interprocess::local_socket::{prelude::*, GenericFilePath, ListenerOptions, Stream};
use interprocess::TryClone;
use serde_json::{json, Value};
use xdist_core::frame::{read_frame, write_frame};
use xdist_core::protocol::{decode_events, Bootstrap, WorkerEvent};

use crate::local::{
    read_channel_then, read_lines, spawn_local, start_process, write_first_frames, Killer,
    LocalProcess, LocalSpawn, OutputPiece, SharedWriter, LOCAL_FRAME_STALL,
};
use crate::{ExitKind, SpawnError, Stream as OutStream, WorkerHandle, WorkerMsg};

/// How long a connecting child may take to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the fork server is started with: the first worker's spawn.
pub struct ZygoteSpawn<'a> {
    /// The first worker's key: the zygote's own output is shown as that worker's.
    pub key: u32,
    pub python: &'a Path,
    pub cwd: &'a Path,
    pub env: &'a [(OsString, OsString)],
    pub bootstrap: &'a Bootstrap,
    /// Polled while the zygote collects: true stops waiting for it (Ctrl-C).
    pub interrupted: fn() -> bool,
}

/// The controller's side of a forked worker before and after it connects.
#[derive(Default)]
pub(crate) struct ForkLink {
    pid: Option<u32>,
    /// A signal asked for before the pid was known.
    pending_signal: Option<i32>,
    stream: Option<Box<dyn Write + Send>>,
    /// Commands written before the child connected.
    pending: Vec<u8>,
}

impl ForkLink {
    /// The child's pid is known: a signal asked for before goes out now.
    fn set_pid(link: &Mutex<ForkLink>, pid: u32) {
        let mut l = link.lock().unwrap_or_else(|e| e.into_inner());
        l.pid = Some(pid);
        if let Some(sig) = l.pending_signal.take() {
            // SAFETY: kill(2) on the child the zygote just forked for us.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    pub(crate) fn signal(link: &Mutex<ForkLink>, sig: i32) {
        let mut l = link.lock().unwrap_or_else(|e| e.into_inner());
        match l.pid {
            // SAFETY: kill(2) on a pid the zygote forked for us; stale is at worst ESRCH.
            Some(pid) => unsafe {
                libc::kill(pid as i32, sig);
            },
            None => {
                if l.pending_signal != Some(libc::SIGKILL) {
                    l.pending_signal = Some(sig);
                }
            }
        }
    }
}

/// The writer half of a forked worker's channel: buffers until the child connects.
struct LateWriter(Arc<Mutex<ForkLink>>);

impl Write for LateWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match l.stream.as_mut() {
            Some(s) => s.write(buf),
            None => {
                l.pending.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match l.stream.as_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

struct Child {
    bootstrap: Vec<u8>,
    /// What spawning it instead takes (when the fork fails).
    spawn: Option<LocalSpawn>,
    link: Arc<Mutex<ForkLink>>,
    exited: bool,
}

struct Shared {
    secret: String,
    python: PathBuf,
    cwd: PathBuf,
    children: Mutex<HashMap<u32, Child>>,
    tx: Sender<WorkerMsg>,
    /// The zygote's events after `ready` (complete once it is ready to fork).
    collection: Mutex<Arc<Vec<WorkerEvent>>>,
}

impl Shared {
    fn exited(&self, key: u32, kind: ExitKind) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = children.get_mut(&key) {
            if !c.exited {
                c.exited = true;
                let _ = self.tx.send(WorkerMsg::Exited(key, kind));
            }
        }
    }
}

/// A running fork server.
pub struct ForkServer {
    pid: u32,
    to_zygote: Mutex<Option<std::io::PipeWriter>>,
    shared: Arc<Shared>,
    dir: PathBuf,
    /// What the zygote collected (after deselection).
    pub units: Units,
}

/// How far the zygote's collection can be split: tests, files, `loadscope` scopes.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct Units {
    pub items: usize,
    pub files: usize,
    pub scopes: usize,
}

/// Why there is no fork server: the caller spawns workers instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoFork(pub String);

impl ForkServer {
    /// Starts the zygote and waits until it has collected. `Err` says why workers must be
    /// spawned instead (the zygote is gone by then).
    pub fn start(z: ZygoteSpawn<'_>, tx: &Sender<WorkerMsg>) -> Result<ForkServer, NoFork> {
        let secret = xdist_core::random_hex();
        let dir =
            std::env::temp_dir().join(format!("xdist-{}-{}", std::process::id(), &secret[..12]));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| NoFork(format!("cannot create {}: {e}", dir.display())))?;
        let sock = dir.join("s");
        let listener = sock
            .as_path()
            .to_fs_name::<GenericFilePath>()
            .and_then(|name| ListenerOptions::new().name(name).create_sync())
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                NoFork(format!("cannot listen on {}: {e}", sock.display()))
            })?;
        let mut env = z.env.to_vec();
        env.push((xdist_core::env::XDIST_ZYGOTE.into(), sock.clone().into()));
        env.push((
            xdist_core::env::XDIST_ZYGOTE_SECRET.into(),
            secret.clone().into(),
        ));
        let LocalProcess {
            mut child,
            mut to_child,
            from_child,
        } = start_process(z.python, z.cwd, &env, None).map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            NoFork(e.to_string())
        })?;
        let pid = child.id();
        write_first_frames(&mut to_child, None, z.bootstrap);
        let shared = Arc::new(Shared {
            secret,
            python: z.python.to_path_buf(),
            cwd: z.cwd.to_path_buf(),
            children: Mutex::new(HashMap::new()),
            tx: tx.clone(),
            collection: Mutex::default(),
        });
        let key = z.key;
        for (out, stream) in [
            (
                child
                    .stdout
                    .take()
                    .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
                OutStream::Stdout,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
                OutStream::Stderr,
            ),
        ] {
            if let Some(out) = out {
                let tx = tx.clone();
                thread::spawn(move || read_lines(key, stream, out, tx, false));
            }
        }
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Units, String>>();
        let reader_shared = shared.clone();
        thread::Builder::new()
            .name("xdist-zygote".into())
            .spawn(move || read_zygote(from_child, child, reader_shared, ready_tx))
            .map_err(|e| NoFork(e.to_string()))?;
        let accept_shared = shared.clone();
        thread::Builder::new()
            .name("xdist-zygote-accept".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let shared = accept_shared.clone();
                    thread::spawn(move || serve_connection(conn, &shared));
                }
            })
            .map_err(|e| NoFork(e.to_string()))?;
        let mut server = ForkServer {
            pid,
            to_zygote: Mutex::new(Some(to_child)),
            shared,
            dir,
            units: Units::default(),
        };
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(units)) => {
                    server.units = units;
                    return Ok(server);
                }
                Ok(Err(reason)) => return Err(NoFork(reason)),
                Err(mpsc::RecvTimeoutError::Timeout) if (z.interrupted)() => {
                    return Err(NoFork("interrupted while the fork server collected".into()))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(NoFork("the fork server exited while collecting".into()))
                }
            }
        }
    }

    /// Asks the zygote for a worker; its messages reach the controller like a spawned one's.
    pub fn fork(
        &self,
        key: u32,
        bootstrap: &Bootstrap,
        env: &[(OsString, OsString)],
        nice: Option<i32>,
    ) -> Result<WorkerHandle, SpawnError> {
        let link = Arc::new(Mutex::new(ForkLink::default()));
        let boot = serde_json::to_vec(bootstrap).unwrap_or_default();
        self.shared
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                Child {
                    bootstrap: boot,
                    spawn: Some(LocalSpawn {
                        key,
                        python: self.shared.python.clone(),
                        cwd: self.shared.cwd.clone(),
                        env: env.to_vec(),
                        bootstrap: bootstrap.clone(),
                        code: None,
                        nice,
                    }),
                    link: link.clone(),
                    exited: false,
                },
            );
        let env: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), json!(v.to_string_lossy())))
            .collect();
        let request = json!({"t": "fork", "key": key, "env": env, "nice": nice});
        let payload = serde_json::to_vec(&request).unwrap_or_default();
        let sent = {
            let mut w = self.to_zygote.lock().unwrap_or_else(|e| e.into_inner());
            w.as_mut()
                .is_some_and(|w| write_frame(w, &payload).and_then(|_| w.flush()).is_ok())
        };
        if !sent {
            self.shared.exited(key, ExitKind::Signal(libc::SIGKILL));
        }
        let writer: SharedWriter = Arc::new(Mutex::new(Some(Box::new(LateWriter(link.clone())))));
        Ok(WorkerHandle {
            key,
            pid: 0,
            writer,
            killer: Killer::Forked(link),
            start: None,
        })
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // Its end of the channel closing is the zygote's signal to stop; SIGKILL in case it
        // cannot notice (its forked children die with it: PR_SET_PDEATHSIG).
        self.to_zygote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // SAFETY: kill(2) and waitpid(2) on the zygote we started. Reaped here (or by its
        // reader thread, then this returns ECHILD at once): its CPU time, and its children's,
        // count in ours.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
            libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The zygote's channel: its fork-server messages until it ends, then its exit.
fn read_zygote(
    from: std::io::PipeReader,
    mut child: std::process::Child,
    shared: Arc<Shared>,
    ready: Sender<Result<Units, String>>,
) {
    let mut reader = std::io::BufReader::new(from);
    let mut buf = Vec::new();
    let mut collection = Vec::new();
    while read_frame(&mut reader, &mut buf).is_ok() {
        if buf.first() == Some(&b'[') {
            match decode_events(&buf) {
                Ok(events) => collection.extend(events),
                Err(e) => {
                    let _ = ready.send(Err(format!("the fork server's collection: {e}")));
                    break;
                }
            }
            buf = Vec::new();
            continue;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
            break;
        };
        let key = msg["key"].as_u64().unwrap_or(u64::MAX) as u32;
        match msg["t"].as_str() {
            Some("forkready") => {
                *shared.collection.lock().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(std::mem::take(&mut collection));
                let _ = ready.send(Ok(serde::Deserialize::deserialize(&msg).unwrap_or_default()));
            }
            Some("nofork") => {
                let _ = ready.send(Err(msg["reason"].as_str().unwrap_or("").to_string()));
            }
            Some("forked") => {
                let found = (shared.children.lock().unwrap_or_else(|e| e.into_inner()))
                    .get(&key)
                    .map(|c| c.link.clone());
                if let (Some(link), Some(pid)) = (found, msg["pid"].as_u64()) {
                    ForkLink::set_pid(&link, pid as u32);
                }
            }
            Some("exited") => {
                let kind = match (msg["signal"].as_i64(), msg["code"].as_i64()) {
                    (Some(s), _) => ExitKind::Signal(s as i32),
                    (None, Some(c)) => ExitKind::Code(c as i32),
                    _ => ExitKind::Code(-1),
                };
                shared.exited(key, kind);
            }
            Some("fork_failed") => spawn_instead(&shared, key, msg["error"].as_str()),
            _ => {}
        }
    }
    let _ = ready.send(Err("the fork server exited while collecting".into()));
    let _ = child.wait();
    // Its children died with it: whatever had not been reported ends now.
    let keys: Vec<u32> = (shared.children.lock().unwrap_or_else(|e| e.into_inner()))
        .keys()
        .copied()
        .collect();
    for key in keys {
        shared.exited(key, ExitKind::Signal(libc::SIGKILL));
    }
}

/// The zygote could not fork (`EAGAIN`, `ENOMEM`): the worker is spawned instead, on the
/// same key and link, so no test is lost.
fn spawn_instead(shared: &Shared, key: u32, error: Option<&str>) {
    let found = (shared.children.lock().unwrap_or_else(|e| e.into_inner()))
        .get_mut(&key)
        .and_then(|c| c.spawn.take().map(|s| (s, c.link.clone())));
    let Some((spawn, link)) = found else {
        return;
    };
    let line = format!(
        "xdist: the fork server could not fork ({}); spawning this worker\n",
        error.unwrap_or("fork failed")
    );
    let _ = (shared.tx).send(WorkerMsg::Output(
        key,
        OutStream::Stderr,
        OutputPiece::new(line.into_bytes()),
    ));
    match spawn_local(spawn, &shared.tx) {
        Ok(mut handle) => {
            let mut l = link.lock().unwrap_or_else(|e| e.into_inner());
            // Commands already written go to the spawned worker, after its first frames.
            let pending = std::mem::take(&mut l.pending);
            let writer = handle
                .writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(mut w) = writer {
                let _ = w.write_all(&pending);
                l.stream = Some(w);
            }
            drop(l);
            ForkLink::set_pid(&link, handle.pid);
            // Its own waiter reports its exit: the zygote has nothing to say about it.
            if let Some(c) =
                (shared.children.lock().unwrap_or_else(|e| e.into_inner())).get_mut(&key)
            {
                c.exited = true;
            }
            handle.start();
        }
        Err(e) => {
            let line = format!("xdist: {e}\n");
            let _ = (shared.tx).send(WorkerMsg::Output(
                key,
                OutStream::Stderr,
                OutputPiece::new(line.into_bytes()),
            ));
            shared.exited(key, ExitKind::Code(-1));
        }
    }
}

#[derive(serde::Deserialize)]
struct Hello {
    secret: String,
    key: u32,
    stream: String,
    #[serde(default)]
    pid: Option<u32>,
}

/// One connection from a forked child: its hello, then its channel or an output stream.
fn serve_connection(mut conn: Stream, shared: &Shared) {
    let _ = conn.set_recv_timeout(Some(HELLO_TIMEOUT));
    let mut buf = Vec::new();
    if read_frame(&mut conn, &mut buf).is_err() {
        return;
    }
    let Ok(hello) = serde_json::from_slice::<Hello>(&buf) else {
        return;
    };
    if hello.secret != shared.secret {
        return;
    }
    let _ = conn.set_recv_timeout(None);
    let key = hello.key;
    let found = (shared.children.lock().unwrap_or_else(|e| e.into_inner()))
        .get(&key)
        .map(|c| (c.bootstrap.clone(), c.link.clone()));
    let Some((bootstrap, link)) = found else {
        return;
    };
    let tx = shared.tx.clone();
    match hello.stream.as_str() {
        "channel" => {
            let Ok(mut writer) = conn.try_clone() else {
                return;
            };
            {
                let mut l = link.lock().unwrap_or_else(|e| e.into_inner());
                let pending = std::mem::take(&mut l.pending);
                if write_frame(&mut writer, &bootstrap).is_err()
                    || writer.write_all(&pending).is_err()
                {
                    return;
                }
                l.stream = Some(Box::new(writer));
            }
            if let Some(pid) = hello.pid {
                ForkLink::set_pid(&link, pid);
            }
            // The channel reader polls its descriptor (stalled frames): read a socket it can poll.
            let Stream::UdSocket(conn) = conn;
            let fd = std::os::fd::OwnedFd::from(conn);
            let collection = (shared.collection.lock().unwrap_or_else(|e| e.into_inner())).clone();
            read_channel_then(
                key,
                std::os::unix::net::UnixStream::from(fd),
                LOCAL_FRAME_STALL,
                tx,
                Some(collection),
            );
        }
        "stdout" => read_lines(key, OutStream::Stdout, conn, tx, true),
        "stderr" => read_lines(key, OutStream::Stderr, conn, tx, true),
        _ => {}
    }
}
