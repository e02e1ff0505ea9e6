//! A worker that went down: whether it crashed, who is blamed, and its replacement.

use crate::report::events::{CrashMoment, RunEvent, TestCrash, WorkerCrash};
use xdist_core::exit::ExitCode;
use xdist_plugin_api::ReportView;
use xdist_sched::NodeKey;
use xdist_worker::ExitKind;

use crate::error::CliError;
use crate::pystep::session_scheduler::CrashVerdict;
use crate::run::state::{blame, crash_moment, Blame, Down, Effect, Lost};

use super::parts::Failure;
use super::run_state::RunState;
use std::time::Instant;

impl RunState<'_> {
    /// Worker `i`'s process exited: once it is down (`Node::take_down`), whether that was a
    /// crash is decided here.
    pub(super) fn maybe_node_down(&mut self, i: usize) {
        let Some(kind) = self.nodes[i].take_down(Instant::now()) else {
            return;
        };
        let others_alive = self.nodes.others_alive(i);
        let n = &self.nodes[i];
        let lost = Lost {
            finished: n.is_finished(),
            ready: n.is_ready(),
            session_started: self.session.started,
            others_alive,
            fatal_pending: self.stopping.fatal.is_some(),
        };
        match lost.verdict() {
            Down::Finished => self.finished_node_down(i, kind),
            Down::Fatal => self.worker_never_started(i, kind),
            Down::AlreadyFatal => {}
            Down::Crash => self.on_crash(i, kind),
        }
    }

    /// A worker that sent `finished` is gone: it leaves the scheduler.
    fn finished_node_down(&mut self, i: usize, kind: ExitKind) {
        if self.ended_abnormally(i, kind) {
            // Its reports are all in; the crash belongs to the end of its session.
            self.report_session_crash(i, CrashMoment::AfterSession, kind);
        }
        if self.nodes[i].scheduled {
            let key = NodeKey(self.nodes[i].key);
            self.nodes[i].scheduled = false;
            let _ = self.dispatch.remove_node(key);
            self.dispatch_actions();
        }
    }

    /// Died before its session started, and no other worker can run anything: say why once.
    fn worker_never_started(&mut self, i: usize, kind: ExitKind) {
        let crash = self.crash_facts(i, kind);
        let why = crate::report::crash::never_started(&crash);
        self.stopping.fatal = Some(CliError::Internal(why));
    }

    /// Worker `i` died before it finished: the test it ran is blamed, it is replaced, or
    /// the restart limit stops the run.
    pub(super) fn on_crash(&mut self, i: usize, kind: ExitKind) {
        if self.stopping.stop.interrupting() {
            // Killed on the user's request: nothing crashed, nothing is replaced.
            if self.nodes[i].scheduled {
                self.nodes[i].scheduled = false;
                let key = NodeKey(self.nodes[i].key);
                let _ = self.dispatch.remove_node(key);
                self.dispatch.actions.clear();
            }
            return;
        }
        let error = "Not properly terminated".to_string();
        self.node_down(i, Some(&error));
        let worker = self.nodes[i].id.clone();
        self.emit(RunEvent::NodeDown { worker, error });
        let (crash_index, gave_back) = self.take_back_work(i);
        let blamed = self.report_blame(i, crash_index, kind);
        // All its tests ran and it was told to end: it died in the session's end
        // (`pytest_sessionfinish`, session fixtures' last teardown), not in a test.
        let session_end = !blamed && !gave_back && self.nodes[i].told_to_end();
        if !blamed {
            // No test to report it on: say it here (and in the summary).
            let moment = crash_moment(session_end, self.nodes[i].is_ready());
            self.report_session_crash(i, moment, kind);
        }
        self.replace_after_crash(i, session_end);
        self.dispatch_actions();
        self.check_finished();
    }

    /// Takes the crashed worker `i` out of the scheduler: the test to charge the crash to,
    /// and whether its next test went back to the queue instead (it never started).
    fn take_back_work(&mut self, i: usize) -> (Option<usize>, bool) {
        // The worker flushes its events when a test starts: `started` is the test that was
        // running when it died, or None if it died between tests.
        let started = self.nodes[i].started.map(|(idx, _)| idx);
        if !self.nodes[i].scheduled {
            return (started.or(self.nodes[i].running), false);
        }
        self.nodes[i].scheduled = false;
        let key = NodeKey(self.nodes[i].key);
        let first = self.dispatch.remove_node(key);
        match (first, started) {
            // Its first pending test never started: it goes back to the queue.
            (Some(f), None) if self.dispatch.requeue(f) => (None, true),
            _ => (first, false),
        }
    }

    /// Reports the crash on the test it is charged to, if any; whether one was blamed.
    fn report_blame(&mut self, i: usize, crash_index: Option<usize>, kind: ExitKind) -> bool {
        let Some(collection) = self.collection.tests.clone() else {
            return false;
        };
        let node = &self.nodes[i];
        let verdict = blame(crash_index, node.outcome_of, |t| self.outcomes.is_done(t));
        if let Some(idx) = crash_index {
            if self.nodes[i].hang.hung != Some(idx) {
                self.nodes[i].hang.hung = None;
            }
        }
        let nodeid = |idx: usize| collection.ids.get(idx).cloned().unwrap_or_default();
        match verdict {
            Blame::Teardown(idx) => {
                // It died after the test's outcome was shown (in its teardown): one
                // outcome per test, so the crash is reported on its own.
                self.outcomes.crashed(idx);
                let moment = CrashMoment::Teardown {
                    nodeid: nodeid(idx),
                };
                self.report_session_crash(i, moment, kind);
            }
            Blame::Test(idx) => {
                self.outcomes.crashed(idx);
                self.report_crash(i, &nodeid(idx), kind);
            }
            Blame::Nobody => {}
        }
        verdict != Blame::Nobody
    }

    /// A replacement for crashed worker `i`, unless it had nothing left to run (then it
    /// does not count for `--max-worker-restart`), the limit is passed, or the run was
    /// stopped (`-x`, Ctrl-C: what is still queued is not run, as with pytest-xdist).
    fn replace_after_crash(&mut self, i: usize, session_end: bool) {
        let worker = self.nodes[i].id.clone();
        if let Some(note) = self.stopping.restarts.on_crash(&worker, !session_end) {
            self.emit(RunEvent::Xdist(note));
            self.stop_all();
        } else if !session_end
            && !self.stopping.stop.stopped_on_purpose()
            && (!self.stopping.shutting_down || self.dispatch.sched.has_pending())
        {
            self.emit(RunEvent::ReplacingWorker { worker });
            self.stopping.shutting_down = false;
            let spec = self.nodes[i].spec;
            self.effect(Effect::Spawn { spec });
        }
    }

    /// Whether a worker that sent `finished` died (a signal, or an exit status other than
    /// the one it announced) rather than ending as its session said; a kill of ours on the
    /// user's request or a fatal error does not count.
    pub(super) fn ended_abnormally(&self, i: usize, kind: ExitKind) -> bool {
        if self.stopping.stop.interrupting() || self.stopping.fatal.is_some() {
            return false;
        }
        match kind {
            ExitKind::Signal(_) => true,
            // The worker's own INTERNALERROR path exits 3 and was reported as such.
            ExitKind::Code(c) => {
                Some(c) != self.nodes[i].finished_status()
                    && !(c == ExitCode::InternalError.code() && self.stopping.stop.internal_error)
            }
            ExitKind::Disconnected => false,
        }
    }

    /// What is known of worker `i`'s death, for its report.
    pub(super) fn crash_facts(&self, i: usize, kind: ExitKind) -> WorkerCrash {
        let n = &self.nodes[i];
        WorkerCrash {
            worker: n.id.clone(),
            exit: kind.to_string(),
            fault: n.fault.clone(),
            hang_timeout: (n.hang.hung.and(self.setup.hang_timeout)).map(|t| t.as_secs_f64()),
            stderr_tail: n.stderr_tail.iter().cloned().collect(),
        }
    }

    /// A crash no test is to blame for: reported on its own, and the run fails.
    pub(super) fn report_session_crash(&mut self, i: usize, moment: CrashMoment, kind: ExitKind) {
        let crash = self.crash_facts(i, kind);
        self.emit(RunEvent::WorkerCrashed { crash, moment });
        // No test is to blame: no node id is kept as failed.
        self.outcomes.ledger.crashes += 1;
    }

    /// The test worker `i` died running fails with the crash, unless a plugin's
    /// `handlecrashitem` runs it again.
    pub(super) fn report_crash(&mut self, i: usize, nodeid: &str, kind: ExitKind) {
        let id = self.nodes[i].id.clone();
        let mut view = ReportView {
            nodeid: nodeid.to_string(),
            outcome: "failed".into(),
            longrepr: crate::report::crash::headline(&id, nodeid),
            when: "???".into(),
            duration: 0.0,
            worker: id,
        };
        if let Some(collection) = self.collection.tests.clone() {
            let sched = (self.dispatch.sched.as_mut(), &mut self.dispatch.actions);
            let r = self
                .hooks
                .handlecrashitem(&mut view, sched, &collection.ids);
            if let Some(Some(verdict)) = self.plugin_result(r) {
                self.session_crash_verdict(verdict);
            }
        }
        // As pytest counts it: a handler's "rerun" (run again) or "crashed" is no failure.
        if view.outcome == "failed" {
            self.outcomes.record(Failure::Crash, nodeid);
        }
        let (crash, infoline) = (self.crash_facts(i, kind), self.infoline(i));
        self.emit(RunEvent::TestCrashed(Box::new(TestCrash {
            crash,
            nodeid: nodeid.to_string(),
            longrepr: view.longrepr,
            outcome: view.outcome,
            infoline,
        })));
    }

    /// What the controller session's `pytest_handlecrashitem` printed: shown now, after
    /// the worker's `node down`. (The session logged the report itself.)
    fn session_crash_verdict(&mut self, verdict: CrashVerdict) {
        if !verdict.output.is_empty() {
            let text = verdict.output;
            self.emit(RunEvent::ControllerOutput { text });
        }
    }

    /// pytest-xdist's `[gw0] linux -- Python 3.11.7 /usr/bin/python3` line.
    pub(super) fn infoline(&self, i: usize) -> Option<String> {
        let info = &self.nodes[i].workerinfo;
        let platform = info.get("sysplatform")?.as_str()?;
        let exe = info.get("executable")?.as_str()?;
        let ver: Vec<String> = info
            .get("version_info")?
            .as_array()?
            .iter()
            .take(3)
            .map(|v| v.to_string())
            .collect();
        Some(format!(
            "[{}] {platform} -- Python {} {exe}",
            self.nodes[i].id,
            ver.join(".")
        ))
    }
}
