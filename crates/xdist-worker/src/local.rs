//! Local workers: a child process with the channel on two extra pipes.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use xdist_core::frame::{read_frame, write_frame, FrameError};
use xdist_core::protocol::{
    decode_events, encode_commands, Bootstrap, Command as WCommand, WorkerEvent,
};

use crate::bootstrap::{BOOTSTRAP, WORKER_CODE};
use crate::{ChannelFault, ExitKind, Stream, WorkerMsg};

/// File descriptors the channel occupies in the child.
const CHILD_READ_FD: i32 = 3;
const CHILD_WRITE_FD: i32 = 4;

/// What to start.
pub struct LocalSpawn {
    pub key: u32,
    pub python: PathBuf,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub bootstrap: Bootstrap,
    /// Replacement Python worker code (`getremotemodule` plugins); the embedded code if None.
    pub code: Option<String>,
    /// `//nice=`: added to the worker's niceness.
    pub nice: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("failed to create a pipe: {0}")]
    Pipe(std::io::Error),
    #[error("failed to start {python}: {source}")]
    Start {
        python: String,
        source: std::io::Error,
    },
    /// A remote worker could not be reached or refused us (`socket=`, `ssh=`).
    #[error("{0}")]
    Remote(String),
}

/// How to stop a worker.
pub(crate) enum Killer {
    /// A local process: the worker itself, or the `ssh` client carrying it.
    Pid(u32),
    /// A socket connection: closing it ends the worker's channel.
    Socket(std::net::TcpStream),
    /// A child of the fork server (its pid arrives later).
    Forked(Arc<Mutex<crate::fork::ForkLink>>),
}

/// The command side of a channel, shared with the thread that sends the first two frames.
pub(crate) type SharedWriter = Arc<Mutex<Option<Box<dyn Write + Send>>>>;

/// The controller's side of one worker: send commands, signal the process.
pub struct WorkerHandle {
    pub key: u32,
    /// The local process (worker or `ssh` client); 0 for socket workers.
    pub pid: u32,
    pub(crate) writer: SharedWriter,
    pub(crate) killer: Killer,
    /// Starts the threads that read a local worker (see [`WorkerHandle::start`]).
    pub(crate) start: Option<Box<dyn FnOnce() + Send>>,
}

impl WorkerHandle {
    /// Starts reading the worker: nothing it sends arrives before this. Local workers wait
    /// for it so a controller can fork all of them while its own memory is small (a fork
    /// copies the page tables; decoded collections would make every later one slower).
    /// Remote workers are read from the start; for them this does nothing.
    pub fn start(&mut self) {
        if let Some(start) = self.start.take() {
            start();
        }
    }

    /// Sends a batch of commands. A worker that is gone is not an error here: its exit
    /// arrives as a message.
    pub fn send(&mut self, cmds: &[WCommand]) {
        if cmds.is_empty() {
            return;
        }
        let payload = encode_commands(cmds);
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = guard.as_mut() {
            if write_frame(w, &payload).and_then(|_| w.flush()).is_err() {
                *guard = None;
            }
        }
    }

    /// Closes the command channel (the worker treats it as `stop`).
    pub fn close(&mut self) {
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Sends a signal to the worker process. For a socket worker, any terminating signal
    /// closes the connection (the remote side cannot be signalled).
    pub fn signal(&self, sig: i32) {
        match &self.killer {
            // SAFETY: kill(2) with a pid we started; a stale pid is at worst ESRCH.
            Killer::Pid(pid) => unsafe {
                libc::kill(*pid as i32, sig);
            },
            Killer::Forked(link) => crate::fork::ForkLink::signal(link, sig),
            Killer::Socket(s) => {
                if sig != libc::SIGUSR1 {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    }
}

impl WorkerHandle {
    /// Sends `sig` to one thread (`tid`) of this worker's own process (a local worker only:
    /// false when `pid` is not the process we started).
    pub fn signal_thread(&self, pid: u32, tid: i32, sig: i32) -> bool {
        match self.killer {
            Killer::Pid(own) if own == pid => {
                // SAFETY: tgkill(2) on a thread of the process we started; a stale tid is
                // at worst ESRCH (the kernel checks it belongs to `pid`).
                unsafe {
                    libc::syscall(
                        libc::SYS_tgkill,
                        pid as libc::c_long,
                        tid as libc::c_long,
                        sig as libc::c_long,
                    ) == 0
                }
            }
            _ => false,
        }
    }
}

/// A started local Python process running [`BOOTSTRAP`], with its channel's pipe ends.
pub(crate) struct LocalProcess {
    pub child: std::process::Child,
    pub to_child: std::io::PipeWriter,
    pub from_child: std::io::PipeReader,
}

/// Starts `python -u -c BOOTSTRAP` with the channel on fds 3/4, in its own process group,
/// dying with the controller.
pub(crate) fn start_process(
    python: &std::path::Path,
    cwd: &std::path::Path,
    env: &[(OsString, OsString)],
    nice: Option<i32>,
) -> Result<LocalProcess, SpawnError> {
    let (to_child_r, to_child_w) = std::io::pipe().map_err(SpawnError::Pipe)?;
    let (from_child_r, from_child_w) = std::io::pipe().map_err(SpawnError::Pipe)?;
    let child_read: OwnedFd = to_child_r.into();
    let child_write: OwnedFd = from_child_w.into();
    let (cr, cw) = (child_read.as_raw_fd(), child_write.as_raw_fd());

    let mut cmd = Command::new(python);
    cmd.arg("-u")
        .arg("-c")
        .arg(BOOTSTRAP)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env(
            xdist_core::env::XDIST_CHANNEL_FDS,
            format!("{CHILD_READ_FD},{CHILD_WRITE_FD}"),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: only async-signal-safe calls (dup2, setpgid, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move the channel to fixed descriptors; dup2 clears CLOEXEC on the copies.
            // Both source fds are above 4 (std opens pipes after 0-2 and ours come later), so
            // the order cannot clobber one with the other, but guard anyway.
            let (mut r, mut w) = (cr, cw);
            if r == CHILD_WRITE_FD {
                r = libc::dup(r);
            }
            if w == CHILD_READ_FD {
                w = libc::dup(w);
            }
            if libc::dup2(r, CHILD_READ_FD) < 0 || libc::dup2(w, CHILD_WRITE_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 onto the same number keeps CLOEXEC: clear it explicitly.
            libc::fcntl(CHILD_READ_FD, libc::F_SETFD, 0);
            libc::fcntl(CHILD_WRITE_FD, libc::F_SETFD, 0);
            // Own process group: a terminal Ctrl-C reaches the controller, which decides.
            libc::setpgid(0, 0);
            // Die with the controller.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(n) = nice {
                // nice(2) may legitimately return -1: check errno instead.
                *libc::__errno_location() = 0;
                if libc::nice(n) == -1 && *libc::__errno_location() != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| SpawnError::Start {
        python: python.display().to_string(),
        source,
    })?;
    drop(child_read);
    drop(child_write);
    Ok(LocalProcess {
        child,
        to_child: to_child_w,
        from_child: from_child_r,
    })
}

/// Starts a worker; [`WorkerHandle::start`] starts the threads that feed its messages into `tx`.
pub fn spawn_local(spec: LocalSpawn, tx: &Sender<WorkerMsg>) -> Result<WorkerHandle, SpawnError> {
    let LocalProcess {
        child,
        to_child: to_child_w,
        from_child: from_child_r,
    } = start_process(&spec.python, &spec.cwd, &spec.env, spec.nice)?;
    let key = spec.key;
    let pid = child.id();

    // Frames 0 and 1: the code, then the bootstrap. Both fit the pipe buffer in practice;
    // if the child died already, the exit message tells the story.
    let mut writer: Box<dyn Write + Send> = Box::new(to_child_w);
    let ok = write_first_frames(&mut *writer, spec.code.as_deref(), &spec.bootstrap);
    let writer: SharedWriter = Arc::new(Mutex::new(ok.then_some(writer)));
    let tx = tx.clone();
    let start = move || {
        let mut child = child;
        if let Some(out) = child.stdout.take() {
            spawn_lines(key, Stream::Stdout, out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            spawn_lines(key, Stream::Stderr, err, tx.clone());
        }
        spawn_channel_reader(key, from_child_r, LOCAL_FRAME_STALL, tx.clone());
        spawn_waiter(key, child, tx);
    };
    Ok(WorkerHandle {
        key,
        pid,
        writer,
        killer: Killer::Pid(pid),
        start: Some(Box::new(start)),
    })
}

/// Writes frame 0 (the worker code, embedded unless replaced) and frame 1 (the bootstrap).
/// False if the other side is gone already.
pub(crate) fn write_first_frames(
    mut w: &mut dyn Write,
    code: Option<&str>,
    boot: &Bootstrap,
) -> bool {
    let code = code.unwrap_or(WORKER_CODE);
    let boot = serde_json::to_vec(boot).unwrap_or_default();
    write_frame(&mut w, code.as_bytes()).is_ok()
        && write_frame(&mut w, &boot).is_ok()
        && w.flush().is_ok()
}

/// The thread that decodes the worker's event frames from `reader`.
pub(crate) fn spawn_channel_reader<R: Read + AsRawFd + Send + 'static>(
    key: u32,
    reader: R,
    stall: Duration,
    tx: Sender<WorkerMsg>,
) {
    thread::Builder::new()
        .name(format!("xdist-chan-{key}"))
        .spawn(move || read_channel(key, reader, stall, tx))
        .ok();
}

/// How long a local worker's frame may stay half-written: its writer puts a whole frame
/// into the pipe at once, so bytes that stop mid-frame came from something else (a test
/// writing on the channel) and the rest will never come.
pub(crate) const LOCAL_FRAME_STALL: Duration = Duration::from_secs(5);
/// The same over a network (ssh, socket), which can pause for a while.
pub(crate) const REMOTE_FRAME_STALL: Duration = Duration::from_secs(60);

/// A reader that reports `TimedOut` when nothing arrives for `stall`: inside a frame that
/// is a protocol fault ([`FrameError::Stalled`]), between frames nothing.
struct StallTimeout<R> {
    inner: R,
    stall: Duration,
}

impl<R: Read + AsRawFd> Read for StallTimeout<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut fds = libc::pollfd {
            fd: self.inner.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(self.stall.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll(2) on one valid pollfd that lives across the call.
        match unsafe { libc::poll(&mut fds, 1, ms) } {
            0 => Err(std::io::ErrorKind::TimedOut.into()),
            n if n < 0 => Err(std::io::Error::last_os_error()),
            _ => self.inner.read(buf),
        }
    }
}

/// The thread that waits for a local process and reports how it ended.
pub(crate) fn spawn_waiter(key: u32, child: std::process::Child, tx: Sender<WorkerMsg>) {
    spawn_waiter_then(key, child, tx, || {});
}

/// [`spawn_waiter`], running `after_exit` once the process has ended, before reporting it.
pub(crate) fn spawn_waiter_then(
    key: u32,
    mut child: std::process::Child,
    tx: Sender<WorkerMsg>,
    after_exit: impl FnOnce() + Send + 'static,
) {
    thread::Builder::new()
        .name(format!("xdist-wait-{key}"))
        .spawn(move || {
            let kind = match child.wait() {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(c), _) => ExitKind::Code(c),
                    (None, Some(s)) => ExitKind::Signal(s),
                    _ => ExitKind::Code(-1),
                },
                Err(_) => ExitKind::Code(-1),
            };
            after_exit();
            let _ = tx.send(WorkerMsg::Exited(key, kind));
        })
        .ok();
}

pub(crate) fn read_channel<R: Read + AsRawFd>(
    key: u32,
    reader: R,
    stall: Duration,
    tx: Sender<WorkerMsg>,
) {
    read_channel_then(key, reader, stall, tx, None)
}

/// [`read_channel`], with `after_first` handed over right after the first frame's events (a
/// forked worker's `ready`, then the collection its fork server reported once for all).
pub(crate) fn read_channel_then<R: Read + AsRawFd>(
    key: u32,
    reader: R,
    stall: Duration,
    tx: Sender<WorkerMsg>,
    mut after_first: Option<Arc<Vec<WorkerEvent>>>,
) {
    let reader = StallTimeout {
        inner: reader,
        stall,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut buf = Vec::new();
    let mut batch: Vec<WorkerEvent> = Vec::new();
    loop {
        let permit = big_frame_ahead(&mut reader).then(BigFramePermit::acquire);
        match read_frame(&mut reader, &mut buf) {
            Ok(()) => match decode_events(&buf) {
                Ok(events) => {
                    batch.extend(events);
                    if let Some(more) = after_first.take() {
                        batch.extend(more.iter().cloned());
                    }
                    if permit.is_some() {
                        // A collection: hand it over now, and don't keep its size for the
                        // rest of the run.
                        buf = Vec::new();
                        if !send_batch(key, &mut batch, &tx) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    send_batch(key, &mut batch, &tx);
                    let _ = tx.send(WorkerMsg::ChannelFault(key, ChannelFault::Decode(e)));
                    return;
                }
            },
            Err(FrameError::Closed) => {
                send_batch(key, &mut batch, &tx);
                let _ = tx.send(WorkerMsg::ChannelClosed(key));
                return;
            }
            Err(e) => {
                send_batch(key, &mut batch, &tx);
                let _ = tx.send(WorkerMsg::ChannelFault(key, ChannelFault::Frame(e)));
                return;
            }
        }
        drop(permit);
        if reader.buffer().is_empty() {
            // Everything that arrived is decoded: hand it over in one message, then let
            // more frames accumulate in the pipe for a moment. Workers write a frame per
            // test (crash safety: the kernel keeps what was written), and waking the
            // controller for every one would cost more than the tests.
            if !send_batch(key, &mut batch, &tx) {
                return;
            }
            std::thread::sleep(COALESCE);
        }
    }
}

/// Frames larger than this (collections) are read and decoded [`BIG_FRAME_READERS`] at a
/// time: hundreds of workers send theirs at once, and decoding them all together only piles
/// decoded copies up in memory faster than the controller compares and drops them.
const BIG_FRAME: usize = 1 << 20;
const BIG_FRAME_READERS: usize = 2;
static BIG_FRAMES_READING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Whether the next frame's header is buffered and announces a large frame.
fn big_frame_ahead<R: Read>(reader: &mut BufReader<R>) -> bool {
    match reader.fill_buf() {
        Ok(b) if b.len() >= 4 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize > BIG_FRAME,
        _ => false,
    }
}

/// One of the [`BIG_FRAME_READERS`] turns, given back on drop.
struct BigFramePermit;

impl BigFramePermit {
    fn acquire() -> BigFramePermit {
        let (count, cv) = &BIG_FRAMES_READING;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= BIG_FRAME_READERS {
            n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        BigFramePermit
    }
}

impl Drop for BigFramePermit {
    fn drop(&mut self) {
        let (count, cv) = &BIG_FRAMES_READING;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        cv.notify_one();
    }
}

/// How long a channel reader lets frames accumulate after handing a batch over.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(2);

/// Sends the collected events, if any; false when the controller is gone.
fn send_batch(key: u32, batch: &mut Vec<WorkerEvent>, tx: &Sender<WorkerMsg>) -> bool {
    if batch.is_empty() {
        return true;
    }
    tx.send(WorkerMsg::Events(key, std::mem::take(batch)))
        .is_ok()
}

/// The longest piece of output handed over at once: a line longer than this (one 200 MB
/// `print`) arrives in pieces, so nobody holds it whole.
const OUTPUT_PIECE: usize = 64 * 1024;
/// Output bytes read from workers but not yet handled by the controller, all workers
/// together; a reader waits while this many are in flight, so a worker printing faster than
/// the terminal takes it is held back (as a plain `pytest -s` is) instead of queued in memory.
const OUTPUT_IN_FLIGHT: usize = 4 * 1024 * 1024;
static OUTPUT_BYTES: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Bytes of a worker's output; their share of [`OUTPUT_IN_FLIGHT`] is given back on drop.
#[derive(Debug)]
pub struct OutputPiece(Vec<u8>);

impl OutputPiece {
    pub(crate) fn new(bytes: Vec<u8>) -> OutputPiece {
        let (count, cv) = &OUTPUT_BYTES;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 && *n + bytes.len() > OUTPUT_IN_FLIGHT {
            n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += bytes.len();
        OutputPiece(bytes)
    }

    /// Whether this piece ends its line.
    pub fn ends_line(&self) -> bool {
        self.0.ends_with(b"\n")
    }
}

impl std::ops::Deref for OutputPiece {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for OutputPiece {
    fn drop(&mut self) {
        let (count, cv) = &OUTPUT_BYTES;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(self.0.len());
        cv.notify_all();
    }
}

pub(crate) fn spawn_lines<R: Read + Send + 'static>(
    key: u32,
    stream: Stream,
    r: R,
    tx: Sender<WorkerMsg>,
) {
    thread::Builder::new()
        .name(format!("xdist-out-{key}"))
        .spawn(move || read_lines(key, stream, r, tx, true))
        .ok();
}

/// Forwards `r`'s output as `key`'s, a line or an [`OUTPUT_PIECE`] at a time; at its end,
/// says so when `report_close`.
pub(crate) fn read_lines<R: Read>(
    key: u32,
    stream: Stream,
    r: R,
    tx: Sender<WorkerMsg>,
    report_close: bool,
) {
    let mut reader = BufReader::with_capacity(OUTPUT_PIECE, r);
    while let Some(piece) = next_piece(&mut reader) {
        if tx
            .send(WorkerMsg::Output(key, stream, OutputPiece::new(piece)))
            .is_err()
        {
            return;
        }
    }
    if report_close {
        let _ = tx.send(WorkerMsg::OutputClosed(key, stream));
    }
}

/// The next line (with its `\n`), or the next [`OUTPUT_PIECE`] bytes of a longer one;
/// None at the end of the stream.
fn next_piece<R: Read>(reader: &mut BufReader<R>) -> Option<Vec<u8>> {
    let mut piece = Vec::new();
    while piece.len() < OUTPUT_PIECE {
        let buf = match reader.fill_buf() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let room = OUTPUT_PIECE - piece.len();
        let (mut take, mut done) = match buf.iter().take(room).position(|&b| b == b'\n') {
            Some(pos) => (pos + 1, true),
            None => (buf.len().min(room), false),
        };
        if !done && take == room && take < buf.len() {
            // A full piece: end it on a character boundary (UTF-8 continuation bytes are
            // 0b10xxxxxx), so that no character is split in two.
            let boundary = (take.saturating_sub(3)..=take)
                .rev()
                .find(|&t| buf[t] & 0xC0 != 0x80);
            if let Some(t) = boundary.filter(|&t| t > 0 || !piece.is_empty()) {
                take = t;
            }
            done = true;
        }
        piece.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            break;
        }
    }
    (!piece.is_empty()).then_some(piece)
}
