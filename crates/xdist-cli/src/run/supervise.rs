//! What the run state sends and signals: the scheduler's actions, stop and shutdown,
//! `--hang-timeout` and workers whose channel was lost.

use std::collections::HashMap;
use std::time::Instant;

use xdist_core::protocol::Command;
use xdist_sched::{Action, NodeKey};

use crate::run::state::{Effect, HangStep};

use super::run_state::RunState;

impl RunState<'_> {
    /// `--hang-timeout`: ask a hung worker for its stacks, then kill it; reported as a crash.
    pub(super) fn check_hangs(&mut self, now: Instant) {
        let Some(timeout) = self.setup.hang_timeout else {
            return;
        };
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            if !n.is_running() {
                continue;
            }
            match n.hang.step(n.started, timeout, now) {
                HangStep::DumpStacks => {
                    // Only the thread waiting on the channel is signalled: a signal the
                    // test's thread took would cut its sleep or C call short.
                    let local = !self.setup.specs[n.spec].is_remote();
                    let thread = n.stack_thread.filter(|_| local);
                    self.effect(Effect::DumpStacks { node: i, thread });
                }
                HangStep::Kill => self.effect(Effect::Signal {
                    node: i,
                    sig: libc::SIGKILL,
                }),
                HangStep::Nothing => {}
            }
        }
    }

    /// A worker whose event channel ended but whose process did not: killed after
    /// `CHANNEL_LOST_WAIT`, a crash of the test it was running.
    pub(super) fn check_lost_channels(&mut self, now: Instant) {
        for i in self.nodes.lost_channels_due(now) {
            self.effect(Effect::Signal {
                node: i,
                sig: libc::SIGKILL,
            });
        }
    }

    /// Drops all queued work and ends every worker's session after its running test.
    pub(super) fn stop_all(&mut self) {
        self.stopping.shutting_down = true;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_finished() && self.nodes[i].is_running() {
                self.end_session(i);
                self.send(i, vec![Command::Stop]);
            }
        }
        self.dispatch.actions.clear();
    }

    /// Worker `i`'s session is told to end (once: whether this call told it).
    fn end_session(&mut self, i: usize) -> bool {
        let first = self.nodes[i].tell_end();
        if first {
            self.scheduler_learns_end(i);
        }
        first
    }

    /// The scheduler learns that worker `i` was told to end, once the worker is in it: now,
    /// or when it joins (`schedule_node`). A test put back later must then wait for a
    /// worker that runs it, not go to this one and be lost.
    pub(super) fn scheduler_learns_end(&mut self, i: usize) {
        if self.nodes[i].scheduled && self.nodes[i].told_to_end() {
            self.dispatch
                .sched
                .mark_node_shutdown(NodeKey(self.nodes[i].key));
        }
    }

    /// Sends `cmd` to worker `i`; `stop` and `shutdown` once (a shutdown may become `linger`).
    pub(super) fn tell(&mut self, i: usize, cmd: Command) {
        let cmd = if matches!(cmd, Command::Shutdown | Command::Stop) {
            if !self.end_session(i) {
                return;
            }
            if matches!(cmd, Command::Shutdown) {
                self.shutdown_command(i)
            } else {
                cmd
            }
        } else {
            cmd
        };
        self.send(i, vec![cmd]);
    }

    /// The scheduler's actions, one frame per node per round.
    pub(super) fn dispatch_actions(&mut self) {
        if self.dispatch.actions.is_empty() {
            return;
        }
        let actions = std::mem::take(&mut self.dispatch.actions);
        let mut per_node: HashMap<usize, Vec<Command>> = HashMap::new();
        for a in actions {
            match a {
                Action::Run { node, indices } => {
                    if !self.stopping.shutting_down {
                        let cmds = per_node.entry(node.0 as usize).or_default();
                        cmds.push(Command::Run { indices })
                    }
                }
                Action::Steal { node, indices } => per_node
                    .entry(node.0 as usize)
                    .or_default()
                    .push(Command::Steal { indices }),
                Action::Shutdown { node } => {
                    let i = node.0 as usize;
                    if self.nodes[i].tell_end() {
                        let cmd = self.shutdown_command(i);
                        per_node.entry(i).or_default().push(cmd);
                    }
                }
            }
        }
        // In node order: the same input gives the same effects.
        let mut per_node: Vec<_> = per_node.into_iter().collect();
        per_node.sort_by_key(|(i, _)| *i);
        for (i, mut cmds) in per_node {
            self.dispatch.shard.for_workers(&mut cmds);
            self.send(i, cmds);
        }
    }

    /// Every test ran: every worker is told to end its session.
    pub(super) fn check_finished(&mut self) {
        let stopping = &mut self.stopping;
        if self.collection.complete
            && !stopping.shutting_down
            && self.dispatch.sched.tests_finished()
        {
            stopping.shutting_down = true;
            for i in 0..self.nodes.len() {
                if self.nodes[i].is_running() {
                    self.tell(i, Command::Shutdown);
                }
            }
        }
    }
}
