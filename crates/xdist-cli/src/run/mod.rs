//! One distributed run: the controller loop and the state it owns, and what it needs to
//! start and feed workers (shards, duration history, signals, `--looponfail`, rsync,
//! basetemp, fork-mode zygote). Uses `cli` for the validated options, hands events to
//! `report` and runs `pystep` at the end; it renders no text itself.

pub mod basetemp;
pub mod controller;
pub mod durations;
pub mod looponfail;
pub mod rsync;
pub mod shard;
pub mod signals;
pub mod state;
pub mod zygote;
