//! One distributed run: the controller loop and the state it owns, and what it needs to
//! start and feed workers (shards, duration history, signals, `--looponfail`, rsync,
//! basetemp, fork-mode zygote).
//!
//! `state` decides without I/O (why the run stops and its exit code, the ledger, Ctrl-C,
//! `--maxfail`, restarts, hangs, crash blame, collection verdicts) and has its own unit
//! tests; `controller` is the loop, and its parts (`node`, `spawn`, `worker_events`,
//! `collection`, `crash`, `supervise`, `finish`) carry out those decisions. May use `cli`
//! for the validated options, the schedulers, the plugin host and the worker transport;
//! hands facts to `report` as events (crashes as data: no markup, width or report text is
//! made here) and calls `pystep` at the run's edges.

pub mod basetemp;
mod collection;
pub mod controller;
mod crash;
pub mod durations;
mod finish;
pub mod looponfail;
mod node;
pub mod rsync;
pub mod shard;
pub mod signals;
mod spawn;
pub mod state;
mod supervise;
mod worker_events;
pub mod zygote;
