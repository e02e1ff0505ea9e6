//! One distributed run: the controller loop and the state it owns, and what it needs to
//! start and feed workers (shards, duration history, signals, `--looponfail`, rsync,
//! basetemp, fork-mode zygote). Uses `cli` for the validated options, hands events to
//! `report` and runs `pystep` at the end; it renders no text itself.

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
