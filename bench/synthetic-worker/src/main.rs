//! A stand-in for the Python worker, for measuring the controller (`bench/scale.py`).
//!
//! Started like a real worker (`<python> -u -c <BOOTSTRAP>`, arguments ignored) with the
//! channel on the descriptors `XDIST_CHANNEL_FDS` names (`3,4`). It speaks the protocol the
//! way `crates/xdist-worker/python/xdist_session.py` does, without pytest and without sleeping:
//! `ready`, then `collectionfinish` with `XDIST_SYNTH_TESTS` ids (default 100000), then for
//! every index it is given one passing test (`logstart`, a `call` report, `done`), and
//! `finished`. Like the real worker it runs a test only once it holds the next index (or
//! `shutdown`), sends one frame when a test starts (with everything emitted before it) and
//! one before it waits for work; `steal` is answered with `unscheduled` (all or nothing).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::FromRawFd;
use std::sync::mpsc::{self, Receiver};

use serde_json::{json, Value};
use xdist_core::frame::read_frame;
use xdist_core::protocol::Command;

#[derive(Clone, Copy, PartialEq)]
enum Item {
    Test(usize),
    Shutdown,
}

struct Worker {
    out: File,
    /// Events not sent yet, as JSON texts.
    events: Vec<String>,
    queue: VecDeque<Item>,
    commands: Receiver<Vec<Command>>,
}

impl Worker {
    fn emit(&mut self, event: String) {
        self.events.push(event);
    }

    fn flush(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let mut frame = frame_start();
        frame.push(b'[');
        for (k, e) in self.events.iter().enumerate() {
            if k > 0 {
                frame.push(b',');
            }
            frame.extend_from_slice(e.as_bytes());
        }
        frame.push(b']');
        self.events.clear();
        self.send(frame);
    }

    /// Sends a frame made with [`frame_start`]: one write, as the Python worker does.
    fn send(&mut self, mut frame: Vec<u8>) {
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        if self.out.write_all(&frame).is_err() {
            // The controller is gone: nobody reads our results.
            std::process::exit(3);
        }
    }

    fn handle(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            match cmd {
                Command::Run { indices } => self.queue.extend(indices.into_iter().map(Item::Test)),
                // It names no summary plugins, so `linger` never comes; if it did, ending is
                // right: the controller then runs the summary step itself.
                Command::Shutdown | Command::Linger => self.queue.push_back(Item::Shutdown),
                Command::Summarize { .. } | Command::DumpStacks => {}
                Command::Stop => {
                    self.queue.clear();
                    self.queue.push_back(Item::Shutdown);
                }
                Command::Steal { indices } => {
                    let queued: std::collections::HashSet<usize> = self
                        .queue
                        .iter()
                        .filter_map(|x| match x {
                            Item::Test(i) => Some(*i),
                            Item::Shutdown => None,
                        })
                        .collect();
                    let given = if !indices.is_empty() && indices.iter().all(|i| queued.contains(i))
                    {
                        let wanted: std::collections::HashSet<usize> =
                            indices.iter().copied().collect();
                        self.queue
                            .retain(|x| !matches!(x, Item::Test(i) if wanted.contains(i)));
                        indices
                    } else {
                        Vec::new()
                    };
                    // Answered at once (the real worker's reader thread does the same).
                    let text = json!([{"t": "unscheduled", "indices": given}]).to_string();
                    let mut frame = frame_start();
                    frame.extend_from_slice(text.as_bytes());
                    self.send(frame);
                }
            }
        }
    }

    /// Next index or shutdown; flushes before it waits, like the real worker.
    fn pop(&mut self) -> Item {
        while let Ok(cmds) = self.commands.try_recv() {
            self.handle(cmds);
        }
        if let Some(item) = self.queue.pop_front() {
            return item;
        }
        self.flush();
        loop {
            match self.commands.recv() {
                Ok(cmds) => self.handle(cmds),
                // The controller closed the channel: stop.
                Err(_) => self.handle(vec![Command::Stop]),
            }
            if let Some(item) = self.queue.pop_front() {
                return item;
            }
        }
    }
}

/// A frame buffer with room for the length, filled in by [`Worker::send`].
fn frame_start() -> Vec<u8> {
    vec![0; 4]
}

/// Writes `n` as zero-padded decimal digits over `out`.
fn set_digits(out: &mut [u8], mut n: usize) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn main() {
    let tests: usize = std::env::var(xdist_core::env::XDIST_SYNTH_TESTS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (mut input, out) = open_channel();
    let mut buf = Vec::new();
    // Frame 0: the Python worker code (ignored). Frame 1: the bootstrap.
    if read_frame(&mut input, &mut buf).is_err() || read_frame(&mut input, &mut buf).is_err() {
        std::process::exit(3);
    }
    let verbose = verbosity(&buf);
    if std::env::var_os(xdist_core::env::XDIST_ZYGOTE).is_some() {
        // Asked to be the run's fork server: say it cannot, as a zygote that may not fork
        // does; the controller then spawns its workers.
        let mut frame = frame_start();
        frame.extend_from_slice(br#"{"t":"nofork","reason":"the synthetic worker cannot fork"}"#);
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let mut out = out;
        let _ = out.write_all(&frame);
        std::process::exit(0);
    }
    let mut worker = Worker {
        out,
        events: Vec::new(),
        queue: VecDeque::new(),
        commands: read_commands(input),
    };
    worker.emit(ready_event(verbose).to_string());
    worker.flush();
    worker.send(collection_frame(tests));
    let mut pending = worker.pop();
    while let Item::Test(index) = pending {
        pending = worker.pop();
        worker.emit(format!(r#"{{"t":"logstart","i":{index}}}"#));
        // Sent now, with every report before it (crash attribution in the controller).
        worker.flush();
        worker.emit(format!(
            r#"{{"t":"report","i":{index},"w":"call","o":"passed","c":"passed","l":".","W":"PASSED","d":0.0001}}"#
        ));
        worker.emit(format!(r#"{{"t":"done","i":{index},"d":0.0002}}"#));
    }
    worker.emit(
        r#"{"t":"finished","exitstatus":0,"shouldfail":false,"shouldstop":false,"workeroutput":{"exitstatus":0}}"#
            .to_string(),
    );
    worker.flush();
    std::process::exit(0);
}

/// The channel's two descriptors, as `XDIST_CHANNEL_FDS` names them (default `3,4`).
fn open_channel() -> (BufReader<File>, File) {
    let fds = std::env::var(xdist_core::env::XDIST_CHANNEL_FDS).unwrap_or_else(|_| "3,4".into());
    let mut parts = fds
        .split(',')
        .map(|x| x.trim().parse::<i32>().unwrap_or(-1));
    let (r, w) = (parts.next().unwrap_or(3), parts.next().unwrap_or(4));
    // SAFETY: the controller hands us these descriptors; nothing else in this process owns them.
    let (input, out) = unsafe { (File::from_raw_fd(r), File::from_raw_fd(w)) };
    (BufReader::with_capacity(64 * 1024, input), out)
}

/// `-v`/`-q` in the bootstrap's pytest arguments, counted as pytest counts them.
fn verbosity(bootstrap: &[u8]) -> i64 {
    let boot: Value = serde_json::from_slice(bootstrap).unwrap_or(Value::Null);
    let args: Vec<String> = boot["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    args.iter()
        .map(|a| match a.as_str() {
            "-q" | "--quiet" => -1,
            "-v" | "--verbose" => 1,
            _ => 0,
        })
        .sum()
}

/// A thread that reads command batches; the receiver ends when the controller closes.
fn read_commands(mut input: BufReader<File>) -> mpsc::Receiver<Vec<Command>> {
    let (tx, commands) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        while read_frame(&mut input, &mut buf).is_ok() {
            match serde_json::from_slice::<Vec<Command>>(&buf) {
                Ok(cmds) => {
                    if tx.send(cmds).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        // Dropping `tx` tells the main thread the channel closed.
    });
    commands
}

/// `ready`, with the info and options a real worker reports.
fn ready_event(verbose: i64) -> Value {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    json!({
        "t": "ready",
        "protocol": xdist_core::protocol::PROTOCOL_VERSION,
        "info": {
            "version": "3.12.0 (synthetic)",
            "version_info": [3, 12, 0, "final", 0],
            "sysplatform": "linux",
            "platform": "synthetic",
            "executable": exe,
            "cwd": cwd,
            "pid": std::process::id(),
            "pytest_version": "9.0.0",
            "rootdir": cwd,
        },
        "header": ["platform linux -- synthetic worker, pytest-9.0.0"],
        "options": {
            "verbose": verbose,
            "reportchars": "fE",
            "progress": "progress",
            "startpath": cwd,
            "cache_dir": null,
            "pytest_version": "9.0.0",
        },
    })
}

/// `collectionfinish` for `tests` ids.
fn collection_frame(tests: usize) -> Vec<u8> {
    // Ids shaped like a real suite's (100 tests per module), written straight into the frame.
    let mut frame = frame_start();
    frame.reserve(tests * 34 + 128);
    frame.extend_from_slice(br#"[{"t":"collectionfinish","ids":["#);
    let mut id = *b"\"tests/test_m00000.py::test_000\"";
    for t in 0..tests {
        if t > 0 {
            frame.push(b',');
        }
        set_digits(&mut id[13..18], t / 100);
        set_digits(&mut id[28..31], t % 100);
        frame.extend_from_slice(&id);
    }
    frame.extend_from_slice(br#"],"groups":[],"errors":0,"deselected":0,"lines":[]}]"#);
    frame
}
