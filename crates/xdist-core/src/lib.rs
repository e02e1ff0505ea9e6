//! Shared vocabulary of xdist: test outcomes and reports, the controller/worker protocol and
//! its framing, the options model, ini-file discovery, CPU counting, exit codes and errors.
//!
//! - [`frame`]: length-prefixed frames over any byte stream.
//! - [`protocol`]: the messages inside the frames ([`protocol::Command`] controller -> worker,
//!   [`protocol::WorkerEvent`] worker -> controller, [`protocol::Report`]).
//! - [`exit`]: pytest's exit codes.
//! - [`env`]: every environment variable name xdist reads or sets.

pub mod cpus;
pub mod env;
pub mod events;
pub mod exit;
pub mod frame;
pub mod ini;
pub mod protocol;
pub mod pystr;
pub mod python;
pub mod spec;
