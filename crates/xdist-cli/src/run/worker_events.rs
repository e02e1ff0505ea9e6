//! A worker's events, one at a time: ready, reports, done, warnings, finished.

use std::time::Instant;

use crate::report::events::RunEvent;
use serde_json::{json, Map, Value};
use xdist_core::protocol::{
    Command, Report, ReportOptions, WarningRecord, WorkerEvent, WorkerInfo, PROTOCOL_VERSION,
};
use xdist_sched::NodeKey;

use crate::error::CliError;

use super::finish::summary_report;
use super::node::NodeState;
use super::run_state::RunState;
use crate::pystep::controller_session::SessionEvent;
use crate::run::state::Effect;

impl RunState<'_> {
    pub(super) fn on_event(&mut self, i: usize, ev: WorkerEvent) {
        match ev {
            WorkerEvent::Ready {
                protocol,
                header,
                options,
                info,
                summary_plugins,
                controller_plugins,
                controller_reasons,
                stack_thread,
            } => {
                self.nodes[i].stack_thread = stack_thread.map(|tid| (info.pid, tid));
                self.controller_reasons_seen |= !controller_reasons.is_empty();
                if !controller_reasons.is_empty() && !self.has_controller_session {
                    // Its workerinput came too late for this run's workers: start over.
                    return self.start_over_with_controller_session();
                }
                let plugins = (summary_plugins, controller_plugins);
                self.on_ready(i, protocol, header, options, &info, plugins);
            }
            WorkerEvent::Fatal { kind, message, .. } => {
                if kind == "controller_session" && !self.has_controller_session {
                    // A plugin needs what a controller's `pytest_configure_node` gives.
                    return self.start_over_with_controller_session();
                }
                if self.fatal.is_none() {
                    self.fatal = Some(self.fatal_error(&kind, &message));
                }
            }
            WorkerEvent::Collectreport { r } => self.on_collect_report(i, r),
            WorkerEvent::Collectionfinish {
                ids,
                groups,
                deselected,
                lines,
                ..
            } => self.on_collection(i, ids, groups, deselected, lines),
            WorkerEvent::Logstart { i: index, loc } => self.on_logstart(i, index, loc),
            WorkerEvent::Report(r) => self.on_report(i, r),
            WorkerEvent::Done { i: index, d } => self.on_done(i, index, d),
            WorkerEvent::Warning(w) => self.on_warning(w),
            WorkerEvent::Unscheduled { indices } => {
                if self.nodes[i].scheduled {
                    let _ = self.sched.remove_pending_tests_from_node(
                        NodeKey(self.nodes[i].key),
                        &indices,
                        &mut self.actions,
                    );
                }
            }
            WorkerEvent::InternalError { text } => {
                self.stop.internal_error = true;
                self.emit(RunEvent::InternalError { text });
            }
            WorkerEvent::UnconfigureError { text } => self.nodes[i].unconfigure_error = Some(text),
            WorkerEvent::Lingering => self.nodes[i].linger(),
            WorkerEvent::Log { text } => {
                for line in text.lines() {
                    let (worker, line, ends) = (self.nodes[i].id.clone(), line.into(), true);
                    self.emit(RunEvent::WorkerOutput { worker, line, ends });
                }
            }
            WorkerEvent::Summary { text, error } => {
                self.summary.result = Some(error.map_or(Ok(text), Err));
            }
            WorkerEvent::Finished {
                exitstatus,
                shouldfail,
                shouldstop,
                workeroutput,
            } => self.on_finished(i, exitstatus, [shouldfail, shouldstop], workeroutput),
        }
    }

    /// Worker `i`'s session ended with `exitstatus`; `reasons` are its session's
    /// `shouldfail` and `shouldstop`.
    fn on_finished(
        &mut self,
        i: usize,
        exitstatus: i32,
        reasons: [Value; 2],
        workeroutput: Map<String, Value>,
    ) {
        self.nodes[i].state = NodeState::Finished { status: exitstatus };
        self.worker_outputs.insert(i, workeroutput);
        self.node_down(i, None);
        let reasons = reasons.map(|v| match v {
            Value::String(s) => s,
            _ => String::new(),
        });
        let id = self.nodes[i].id.clone();
        let halts = self.stop.on_worker_finished(&id, exitstatus, reasons);
        self.halt(halts);
    }

    /// A plugin needs a controller session this run has not got: the run starts over.
    fn start_over_with_controller_session(&mut self) {
        self.restart_for_controller = true;
        self.effect(Effect::KillAll);
    }

    /// Worker `i`'s pytest session is up; the first one's header starts the run's output.
    fn on_ready(
        &mut self,
        i: usize,
        protocol: u32,
        mut header: Vec<String>,
        options: ReportOptions,
        info: &WorkerInfo,
        (summary_plugins, controller_plugins): (Vec<String>, Vec<String>),
    ) {
        if self.summary.plugins.is_empty() {
            self.summary.plugins = summary_plugins;
        }
        if self.summary.controller_plugins.is_empty() {
            self.summary.controller_plugins = controller_plugins;
        }
        if let Ok(Value::Object(mut m)) = serde_json::to_value(info) {
            m.insert("id".into(), json!(self.nodes[i].id));
            let spec = &self.setup.specs[self.nodes[i].spec].raw;
            m.insert("spec".into(), json!(spec));
            self.nodes[i].workerinfo = m;
        }
        let view = self.node_view(i);
        let r = self.hooks.testnodeready(&view);
        self.plugin_result(r);
        if self.has_controller_session {
            let (id, workerinfo) = (view.workerid, view.workerinfo);
            self.effect(Effect::Session(SessionEvent::NodeReady { id, workerinfo }));
        }
        if protocol != PROTOCOL_VERSION {
            self.fatal = Some(CliError::Internal(format!(
                "worker {} speaks protocol {protocol}, this xdist speaks {PROTOCOL_VERSION}",
                self.nodes[i].id
            )));
            return;
        }
        self.nodes[i].state = NodeState::Ready;
        if !self.session_started {
            self.session_started = true;
            if let Some(reason) = &self.spawn_fallback {
                header.push(format!("xdist: spawning workers: {reason}"));
            }
            self.options = options.clone();
            self.emit(RunEvent::SessionStart {
                header,
                options: Box::new(options),
            });
            let count = self.setup.workers();
            self.emit(RunEvent::WorkersCreated { count });
        }
        if self.shutting_down {
            self.tell(i, Command::Shutdown);
        }
    }

    /// A collection report: shown once however many workers send it.
    fn on_collect_report(&mut self, i: usize, r: Report) {
        let nodeid = r.nodeid.clone().unwrap_or_default();
        if !self.collect_reports.first_time(i, &nodeid, &r.outcome) {
            return;
        }
        if r.outcome == "failed" {
            self.ledger.collect_errors += 1;
            self.note_failed(&nodeid);
        }
        if let (true, Some(ser)) = (self.wants_summary_reports(), &r.ser) {
            self.keep_report(i, ser);
        }
        let worker = self.nodes[i].id.clone();
        self.emit(RunEvent::CollectReport {
            worker,
            nodeid,
            report: Box::new(r),
        });
    }

    fn on_logstart(&mut self, i: usize, index: usize, loc: Option<String>) {
        self.nodes[i].started = Some((index, Instant::now()));
        self.emit_test_event(i, index, false);
        if let Some(loc) = loc {
            self.emit(RunEvent::TestStart { loc });
        }
    }

    /// Test `index` ended on worker `i` after `d` seconds.
    fn on_done(&mut self, i: usize, index: usize, d: f64) {
        self.nodes[i].running = None;
        self.nodes[i].started = None;
        self.done_tests.insert(index);
        self.run_durations.insert(index, d);
        self.emit_test_event(i, index, true);
        if self.nodes[i].scheduled {
            let key = NodeKey(self.nodes[i].key);
            self.sched
                .mark_test_complete(key, index, d, &mut self.actions);
        }
    }

    /// Warnings outside tests come from every worker: shown once.
    fn on_warning(&mut self, w: WarningRecord) {
        if w.when != "runtest"
            && !self
                .seen_early_warnings
                .insert((w.message.clone(), w.location.clone()))
        {
            return;
        }
        if let (true, Some(sw)) = (self.wants_summary_reports(), &w.summary) {
            match self.has_controller_session {
                true => self.effect(Effect::Session(SessionEvent::Warning(sw.clone()))),
                false => self.summary.warnings.push(sw.clone()),
            }
        }
        self.emit(RunEvent::Warning(Box::new(w)));
    }

    pub(super) fn fatal_error(&self, kind: &str, message: &str) -> CliError {
        let py = self.setup.python.display();
        match kind {
            "no_pytest" => CliError::Usage(format!(
                "failed to import pytest with {py} ({message}); install it with `{py} -m pip install pytest` or pass --python PATH of an interpreter that has pytest"
            )),
            "old_pytest" => CliError::Usage(format!(
                "{message} (xdist needs pytest >= 7); upgrade it with `{py} -m pip install -U pytest`"
            )),
            "usage" => CliError::Usage(message.trim().trim_start_matches("ERROR: ").to_string()),
            _ => CliError::Internal(format!(
                "worker failed to start: {}",
                message.trim_end()
            )),
        }
    }

    pub(super) fn on_report(&mut self, i: usize, r: Report) {
        let Some(collection) = self.collection.clone() else {
            return;
        };
        let nodeid = match (&r.nodeid, r.index) {
            (Some(n), _) => n.clone(),
            (None, Some(idx)) => collection.ids.get(idx).cloned().unwrap_or_default(),
            (None, None) => String::new(),
        };
        if let Some(idx) = r.index {
            self.nodes[i].running = Some(idx);
            if !r.category.is_empty() {
                self.nodes[i].outcome_of = Some(idx);
            }
        }
        if r.outcome == "failed" && r.xfail.is_none() {
            self.ledger.failures += 1;
            self.note_failed(&nodeid);
        }
        if let (true, Some(ser)) = (self.wants_summary_reports(), &r.ser) {
            self.keep_report(i, ser);
        }
        let worker = self.nodes[i].id.clone();
        self.emit(RunEvent::TestReport {
            worker,
            nodeid,
            report: Box::new(r),
        });
        let halts = self.stop.on_failure(&self.ledger, self.options.maxfail);
        self.halt(halts);
    }

    /// A serialized report for the plugins' end-of-run hooks: to the controller session as
    /// it arrives (its plugins act on each, as on pytest-xdist's controller), else kept for
    /// the summary step.
    fn keep_report(&mut self, i: usize, ser: &str) {
        let entry = summary_report(&self.nodes[i].id, ser);
        match self.has_controller_session {
            true => self.effect(Effect::Session(SessionEvent::Report(entry))),
            false => self.summary.reports.push(entry),
        }
    }

    pub(super) fn note_failed(&mut self, nodeid: &str) {
        if self.failed_seen.insert(nodeid.to_string()) {
            self.failed_ids.push(nodeid.to_string());
        }
    }
}
