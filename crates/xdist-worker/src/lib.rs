//! Starting workers, the embedded Python worker code, and the transport to them.
//!
//! A worker is a Python process running one pytest session. [`spawn_local`] starts one with
//! the protocol on a channel of its own (two extra pipes, not stdout/stderr, so `-s` output
//! stays separate) and hands back a [`WorkerHandle`] for sending commands. Everything the
//! worker does afterwards arrives as [`WorkerMsg`]s on one `mpsc` channel shared by all
//! workers: decoded event batches, output lines, channel faults and the process exit. The
//! controller loop is the only consumer.

pub mod bootstrap;
pub mod fork;
pub mod local;
pub mod remote;

pub use fork::{ForkServer, NoFork, Units, ZygoteSpawn};
pub use local::{spawn_local, LocalSpawn, OutputPiece, SpawnError, WorkerHandle};
pub use remote::{spawn_worker, WorkerSpawn};

use xdist_core::frame::FrameError;
use xdist_core::protocol::{DecodeError, WorkerEvent};

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
    /// A socket worker's connection ended (its process is on another machine).
    Disconnected,
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(c) => write!(f, "exit code {c}"),
            ExitKind::Signal(s) => f.write_str(&signal_name(*s)),
            ExitKind::Disconnected => f.write_str("connection closed"),
        }
    }
}

/// `SIGSEGV`, `SIGKILL`, ... for a signal number.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// A fault on the channel: the worker is treated as crashed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelFault {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// Everything the controller hears from workers, tagged with the worker's key.
#[derive(Debug)]
pub enum WorkerMsg {
    Events(u32, Vec<WorkerEvent>),
    /// The channel ended cleanly (the worker closed it, normally by exiting).
    ChannelClosed(u32),
    /// The channel carried something that is not our protocol.
    ChannelFault(u32, ChannelFault),
    /// A line of output, or a piece of a long one (the piece does not end with `\n`).
    Output(u32, Stream, OutputPiece),
    /// The stream reached its end (the process and any children holding it are gone).
    OutputClosed(u32, Stream),
    Exited(u32, ExitKind),
}
