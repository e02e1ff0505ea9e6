//! What the controller sends and signals: the scheduler's actions, stop and shutdown,
//! Ctrl-C, `--hang-timeout` and workers whose channel was lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xdist_core::protocol::Command;
use xdist_sched::{Action, NodeKey};

use crate::run::state::{Effect, HangStep};

use super::controller::Controller;

/// How long a worker may live on after its event channel ended without `finished` (a test
/// closed or replaced it): then nothing it does can be reported, and it is killed.
pub(super) const CHANNEL_LOST_WAIT: Duration = Duration::from_secs(2);

impl Controller<'_> {
    /// Carries out what the run state decided.
    pub(super) fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::StopAll => self.stop_all(),
                Effect::KillAll => self.kill_all(),
            }
        }
    }

    pub(super) fn check_interrupts(&mut self) {
        let effects = self
            .stop
            .on_signals(crate::run::signals::count(), Instant::now());
        self.perform(effects);
    }

    /// `--hang-timeout`: ask a hung worker for its stacks, then kill it; reported as a crash.
    pub(super) fn check_hangs(&mut self) {
        let Some(timeout) = self.setup.hang_timeout else {
            return;
        };
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            if n.exited.is_some() {
                continue;
            }
            match n.hang.step(n.started, timeout, Instant::now()) {
                HangStep::DumpStacks => {
                    // Only the thread waiting on the channel is signalled: a signal the
                    // test's thread took would cut its sleep or C call short.
                    let signalled = match n.stack_thread {
                        Some((pid, tid)) if !self.setup.specs[n.spec].is_remote() => {
                            n.handle.signal_thread(pid, tid, libc::SIGUSR1)
                        }
                        _ => false,
                    };
                    if !signalled {
                        // A remote process (or an unknown thread): ask over the channel.
                        n.handle.send(&[Command::DumpStacks]);
                    }
                }
                HangStep::Kill => n.handle.signal(libc::SIGKILL),
                HangStep::Nothing => {}
            }
        }
    }

    /// A worker whose event channel ended but whose process did not: killed after
    /// [`CHANNEL_LOST_WAIT`], a crash of the test it was running.
    pub(super) fn check_lost_channels(&mut self) {
        let lost = std::mem::take(&mut self.lost_channels);
        for i in lost {
            let n = &mut self.nodes[i];
            match n.channel_lost {
                Some(at) if n.exited.is_none() && at.elapsed() >= CHANNEL_LOST_WAIT => {
                    n.fault = Some("channel lost: the worker's event channel was closed or replaced while it ran".into());
                    n.handle.signal(libc::SIGKILL);
                }
                Some(_) if n.exited.is_none() => self.lost_channels.push(i),
                _ => {}
            }
        }
    }

    pub(super) fn kill_all(&mut self) {
        for n in &mut self.nodes {
            if n.exited.is_none() {
                n.handle.signal(libc::SIGKILL);
            }
        }
    }

    /// Drops all queued work and ends every worker's session after its running test.
    pub(super) fn stop_all(&mut self) {
        self.shutting_down = true;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_finished() && self.nodes[i].exited.is_none() {
                self.nodes[i].shutdown_sent = true;
                self.nodes[i].handle.send(&[Command::Stop]);
                if self.nodes[i].scheduled {
                    self.sched.mark_node_shutdown(NodeKey(self.nodes[i].key));
                }
            }
        }
        self.actions.clear();
    }

    pub(super) fn send(&mut self, i: usize, cmd: Command) {
        let cmd = if matches!(cmd, Command::Shutdown | Command::Stop) {
            if self.nodes[i].shutdown_sent {
                return;
            }
            self.nodes[i].shutdown_sent = true;
            if self.nodes[i].scheduled {
                self.sched.mark_node_shutdown(NodeKey(self.nodes[i].key));
            }
            if matches!(cmd, Command::Shutdown) {
                self.shutdown_command(i)
            } else {
                cmd
            }
        } else {
            cmd
        };
        self.nodes[i].handle.send(&[cmd]);
    }

    pub(super) fn dispatch_actions(&mut self) {
        if self.actions.is_empty() {
            return;
        }
        let actions = std::mem::take(&mut self.actions);
        // One frame per node per round.
        let mut per_node: HashMap<u32, Vec<Command>> = HashMap::new();
        for a in actions {
            match a {
                Action::Run { node, indices } => {
                    if !self.shutting_down {
                        per_node
                            .entry(node.0)
                            .or_default()
                            .push(Command::Run { indices })
                    }
                }
                Action::Steal { node, indices } => per_node
                    .entry(node.0)
                    .or_default()
                    .push(Command::Steal { indices }),
                Action::Shutdown { node } => {
                    let i = self.node_index(node.0);
                    if !self.nodes[i].shutdown_sent {
                        self.nodes[i].shutdown_sent = true;
                        let cmd = self.shutdown_command(i);
                        per_node.entry(node.0).or_default().push(cmd);
                    }
                }
            }
        }
        for (key, mut cmds) in per_node {
            let i = self.node_index(key);
            self.shard_out(&mut cmds);
            self.nodes[i].handle.send(&cmds);
        }
    }

    pub(super) fn check_finished(&mut self) {
        if self.collection_complete && !self.shutting_down && self.sched.tests_finished() {
            self.shutting_down = true;
            for i in 0..self.nodes.len() {
                if self.nodes[i].exited.is_none() {
                    self.send(i, Command::Shutdown);
                }
            }
        }
    }
}
