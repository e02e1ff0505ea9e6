//! The run's state and its one decision step: [`RunState::on`] takes a worker's message or
//! the clock and returns the [`Effect`]s the controller loop carries out (frames to send,
//! signals, replacement workers, events for the reporters). No process, pipe or reporter is
//! reachable from here, so the unit tests (`run_state_tests.rs`) drive it with messages.
//!
//! The state is a handful of typed parts (`parts.rs`, and `NodeTable`, `RunDurations`),
//! each with the small decisions that touch only it. The handlers live by job:
//! `worker_events` (a worker's events), `collection`, `crash` (a worker that went down),
//! `supervise` (scheduler actions, stop, clocks), `finish` (what the end of the run reads).

use std::time::Instant;

use serde_json::json;
use xdist_plugin_api::{ConfigView, NodeView};
use xdist_worker::{Stream, WorkerMsg};

use crate::error::CliError;
use crate::pystep::controller_session::SessionEvent;
use crate::report::events::{Fault, RunEvent};
use crate::run::controller::RunSetup;
use crate::run::durations::RunDurations;
use crate::run::hooks::Hooks;
use crate::run::node::{NodeTable, Pipe, STDERR_TAIL};
use crate::run::parts::{
    ControllerSide, Dispatch, Outcomes, RunCollection, Session, ShownOnce, Stopping,
};
use crate::run::state::{Effect, Halt};

/// What the run state reacts to.
#[derive(Debug)]
pub enum Input {
    /// A worker's message (events, output, its channel or process ending).
    Worker(WorkerMsg),
    /// After each message or 100 ms without one: `signals` Ctrl-C/SIGTERM seen so far.
    Clock { now: Instant, signals: u32 },
}

/// Everything a run knows, mutated only by [`RunState::on`] (and the loop's bookkeeping of
/// the workers it started): what was fixed before the start, the hooks, and the typed parts
/// (`parts.rs`) the handlers share.
pub struct RunState<'r> {
    pub(super) setup: RunSetup,
    pub(super) hooks: Hooks<'r>,
    pub(super) nodes: NodeTable,
    pub(super) dispatch: Dispatch,
    pub(super) session: Session,
    pub(super) collection: RunCollection,
    pub(super) shown: ShownOnce,
    pub(super) outcomes: Outcomes,
    pub(super) durations: RunDurations,
    pub(super) stopping: Stopping,
    pub(super) controller: ControllerSide,
    pub(super) started: Instant,
    /// The effects decided so far in this step.
    out: Vec<Effect>,
}

impl<'r> RunState<'r> {
    pub fn new(
        setup: RunSetup,
        hooks: Hooks<'r>,
        config_view: &ConfigView,
        has_controller_session: bool,
    ) -> Result<Self, CliError> {
        let dispatch = Dispatch::new(&setup, &hooks, config_view)?;
        Ok(RunState {
            stopping: Stopping::new(setup.max_restarts),
            setup,
            hooks,
            nodes: NodeTable::default(),
            dispatch,
            session: Session::default(),
            collection: RunCollection::default(),
            shown: ShownOnce::default(),
            outcomes: Outcomes::default(),
            durations: RunDurations::default(),
            controller: ControllerSide::new(has_controller_session),
            started: Instant::now(),
            out: Vec::new(),
        })
    }

    /// The one decision step: what `input` changes, and what the loop must do about it.
    pub fn on(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Worker(msg) => self.on_message(msg),
            Input::Clock { now, signals } => self.on_clock(now, signals),
        }
        std::mem::take(&mut self.out)
    }

    /// The run is over: every worker is down, a fatal error, or it starts over.
    pub fn ended(&self) -> bool {
        self.nodes.all_down() || self.stopping.fatal.is_some() || self.controller.start_over
    }

    pub(super) fn effect(&mut self, effect: Effect) {
        self.out.push(effect);
    }

    pub(super) fn emit(&mut self, ev: RunEvent) {
        self.out.push(Effect::Emit(ev));
    }

    pub(super) fn send(&mut self, node: usize, cmds: Vec<xdist_core::protocol::Command>) {
        self.out.push(Effect::Send { node, cmds });
    }

    /// What a part of the state decided about stopping.
    pub(super) fn halt(&mut self, halts: Vec<Halt>) {
        for halt in halts {
            match halt {
                Halt::StopAll => self.stop_all(),
                Halt::KillAll => self.effect(Effect::KillAll),
            }
        }
    }

    /// Records a plugin hook failure (exit 3) unless an error is already pending.
    pub(super) fn plugin_result<T>(&mut self, r: Result<T, CliError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.stopping.fail(e);
                None
            }
        }
    }

    pub(super) fn node_view(&self, i: usize) -> NodeView {
        let n = &self.nodes[i];
        NodeView {
            workerid: n.id.clone(),
            spec: self.setup.specs[n.spec].raw.clone(),
            workerinput: n.workerinput.clone(),
            workerinfo: n.workerinfo.clone(),
        }
    }

    /// `pytest_testnodedown` of node `i` (`error`: why it went down, None when it finished),
    /// in the plugins and in the controller session.
    pub(super) fn node_down(&mut self, i: usize, error: Option<&str>) {
        let view = self.node_view(i);
        let r = self.hooks.testnodedown(&view, error);
        self.plugin_result(r);
        if self.controller.has_session {
            let workeroutput = self
                .outcomes
                .worker_outputs
                .get(&i)
                .cloned()
                .unwrap_or_default();
            self.effect(Effect::Session(SessionEvent::NodeDown {
                id: view.workerid,
                spec: view.spec,
                workeroutput,
                workerinfo: view.workerinfo,
                error: error.map(str::to_string),
            }));
        }
    }

    /// `TestStarted` or (`finished`) `TestFinished` for test `index` on node `i`.
    pub(super) fn emit_test_event(&mut self, i: usize, index: usize, finished: bool) {
        let Some(nodeid) = self.collection.nodeid(index) else {
            return;
        };
        let worker = self.nodes[i].id.clone();
        self.emit(match finished {
            false => RunEvent::TestStarted { worker, nodeid },
            true => RunEvent::TestFinished { worker, nodeid },
        });
    }

    /// Fork mode: the collection is known before the second worker starts; never start more
    /// than `n` workers, the scheduler's units (`-n 8 test_one.py::test_x` starts one).
    pub(super) fn size_to(&mut self, n: usize) {
        self.setup.specs.truncate(n);
        for node in self.nodes.iter_mut() {
            node.workerinput.insert("workercount".into(), json!(n));
        }
        // No node was added yet: the scheduler starts over with the smaller count.
        self.dispatch.config.num_nodes = n;
        self.dispatch.remake(self.setup.opts.dist);
    }

    fn on_message(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Events(key, events) => {
                for ev in events {
                    if let Some(ev) = self.dispatch.shard.for_scheduler(ev) {
                        self.on_event(key as usize, ev);
                    }
                }
                if let Some(e) = self.hooks.take_error() {
                    self.stopping.fail(e);
                }
                self.dispatch_actions();
                self.check_finished();
            }
            WorkerMsg::ChannelClosed(key) => {
                let i = key as usize;
                self.nodes.close_channel(i, Instant::now());
                self.maybe_node_down(i);
            }
            WorkerMsg::ChannelFault(key, fault) => {
                let i = key as usize;
                self.nodes[i].pipes.end(Pipe::Channel);
                self.nodes[i].fault = Some(Fault::Protocol(fault.to_string()));
                // A worker that breaks the protocol is failed like a crash.
                self.effect(Effect::Signal {
                    node: i,
                    sig: libc::SIGKILL,
                });
                self.maybe_node_down(i);
            }
            WorkerMsg::Output(key, stream, bytes) => {
                let ends = bytes.ends_line();
                let line = String::from_utf8_lossy(&bytes);
                let line = match ends {
                    true => line.trim_end_matches(['\n', '\r']).to_string(),
                    false => line.into_owned(),
                };
                drop(bytes);
                self.on_output(key as usize, stream, line, ends);
            }
            WorkerMsg::OutputClosed(key, stream) => {
                let i = key as usize;
                self.nodes[i].pipes.end(stream.into());
                self.maybe_node_down(i);
            }
            WorkerMsg::Exited(key, kind) => {
                let i = key as usize;
                self.nodes.set_exited(i, kind, Instant::now());
                self.maybe_node_down(i);
            }
        }
    }

    /// A line (or, not `ends`, a piece of one) worker `i` wrote: shown with `-s`, and its
    /// stderr's last lines kept for a crash report.
    fn on_output(&mut self, i: usize, stream: Stream, line: String, ends: bool) {
        if stream == Stream::Stderr {
            let tail = &mut self.nodes[i].stderr_tail;
            tail.push_back(line.clone());
            if tail.len() > STDERR_TAIL {
                tail.pop_front();
            }
        }
        if self.setup.opts.pytest.capture_no {
            let worker = self.nodes[i].id.clone();
            self.emit(RunEvent::WorkerOutput { worker, line, ends });
        }
    }

    /// What time decides: the summary step, Ctrl-C, hangs, lost channels, and workers whose
    /// streams never ended.
    fn on_clock(&mut self, now: Instant, signals: u32) {
        self.maybe_summarize();
        let halts = self.stopping.stop.on_signals(signals, now);
        self.halt(halts);
        self.check_hangs(now);
        self.check_lost_channels(now);
        if self.nodes.any_exited() {
            for i in 0..self.nodes.len() {
                if self.nodes[i].awaits_down() {
                    self.maybe_node_down(i);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "run_state_tests.rs"]
mod tests;
