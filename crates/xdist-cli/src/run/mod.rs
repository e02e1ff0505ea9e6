//! One distributed run: the controller loop and the state it feeds, and what it needs to
//! start and feed workers (shards, duration history, signals, `--looponfail`, rsync,
//! basetemp, fork-mode zygote).
//!
//! `run_state::RunState::on` is the one decision step: a worker's message or the clock
//! in, [`state::Effect`]s out (send, signal, spawn, emit); `controller` is the thin loop that
//! performs them and owns all I/O (process handles, reporters, the controller session, the
//! fork server). `RunState` is a handful of typed parts: `parts` (`Dispatch`: scheduler,
//! its actions and `shard::ShardMaps`; `Session`; `RunCollection`; `ShownOnce`; `Outcomes`;
//! `Stopping`; `ControllerSide`: controller session and summary step),
//! `durations::RunDurations` and `node` (the node table, lost channels too); the decisions
//! they share are in `state` (why the run stops and its exit code, the ledger, Ctrl-C,
//! `--maxfail`, restarts, hangs, crash blame, collection verdicts). Its handlers live by job
//! in `worker_events`, `collection`, `crash`, `supervise` and `finish`. `state_tests`,
//! `parts_tests`, `node_tests` and `run_state_tests` drive them without processes. Plugin
//! hooks are called through `hooks` only. May use `cli` for
//! the validated options, the schedulers, the plugin host and the worker transport; hands
//! facts to `report` as events (crashes, xdist's own notes and why the run stopped as
//! data: no wording, markup or width is made here) and calls `pystep` at the run's edges.

pub mod basetemp;
mod collection;
pub mod controller;
mod crash;
pub mod durations;
mod finish;
pub mod hooks;
pub mod looponfail;
mod node;
mod parts;
pub mod rsync;
pub mod run_state;
pub mod shard;
pub mod signals;
mod spawn;
pub mod state;
mod supervise;
mod worker_events;
pub mod zygote;
