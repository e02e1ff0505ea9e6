//! A worker's events, one at a time: ready, reports, done, warnings, finished.

use std::time::Instant;

use crate::report::events::RunEvent;
use serde_json::{json, Map, Value};
use xdist_core::protocol::{
    Command, Report, ReportOptions, WarningRecord, WorkerEvent, WorkerInfo, PROTOCOL_VERSION,
};
use xdist_sched::NodeKey;

use super::finish::summary_report;
use super::node::NodeState;
use super::parts::Failure;
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
                self.controller.reasons_seen |= !controller_reasons.is_empty();
                if !controller_reasons.is_empty() && !self.controller.has_session {
                    // Its workerinput came too late for this run's workers: start over.
                    return self.start_over_with_controller_session();
                }
                let plugins = (summary_plugins, controller_plugins);
                self.on_ready(i, protocol, header, options, &info, plugins);
            }
            WorkerEvent::Fatal { kind, message, .. } => {
                if kind == "controller_session" && !self.controller.has_session {
                    // A plugin needs what a controller's `pytest_configure_node` gives.
                    return self.start_over_with_controller_session();
                }
                if self.stopping.fatal.is_none() {
                    let python = &self.setup.python;
                    let fatal = crate::report::crash::worker_fatal(&kind, &message, python);
                    self.stopping.fail(fatal);
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
                    self.dispatch
                        .gave_back(NodeKey(self.nodes[i].key), &indices);
                }
            }
            WorkerEvent::InternalError { text } => {
                self.stopping.stop.internal_error = true;
                self.emit(RunEvent::InternalError { text });
            }
            WorkerEvent::UnconfigureError { text } => self.nodes[i].unconfigure_error = Some(text),
            WorkerEvent::Lingering => self.nodes[i].linger(),
            WorkerEvent::Log { text } => {
                if !self.shown.news_log(self.nodes[i].is_finished(), &text) {
                    return;
                }
                for line in text.lines() {
                    let (worker, line, ends) = (self.nodes[i].id.clone(), line.into(), true);
                    self.emit(RunEvent::WorkerOutput { worker, line, ends });
                }
            }
            WorkerEvent::Summary { text, error } => {
                self.controller.summary.result = Some(error.map_or(Ok(text), Err));
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
        self.outcomes.worker_outputs.insert(i, workeroutput);
        self.node_down(i, None);
        let reasons = reasons.map(|v| match v {
            Value::String(s) => s,
            _ => String::new(),
        });
        let id = self.nodes[i].id.clone();
        let halts = (self.stopping.stop).on_worker_finished(&id, exitstatus, reasons);
        self.halt(halts);
    }

    /// A plugin needs a controller session this run has not got: the run starts over.
    fn start_over_with_controller_session(&mut self) {
        self.controller.start_over = true;
        self.effect(Effect::KillAll);
    }

    /// Worker `i`'s pytest session is up; the first one's header starts the run's output.
    fn on_ready(
        &mut self,
        i: usize,
        protocol: u32,
        header: Vec<String>,
        options: ReportOptions,
        info: &WorkerInfo,
        (summary_plugins, controller_plugins): (Vec<String>, Vec<String>),
    ) {
        let summary = &mut self.controller.summary;
        if summary.plugins.is_empty() {
            summary.plugins = summary_plugins;
        }
        if summary.controller_plugins.is_empty() {
            summary.controller_plugins = controller_plugins;
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
        if self.controller.has_session {
            let (id, workerinfo) = (view.workerid, view.workerinfo);
            self.effect(Effect::Session(SessionEvent::NodeReady { id, workerinfo }));
        }
        if protocol != PROTOCOL_VERSION {
            let worker = &self.nodes[i].id;
            self.stopping.fatal = Some(crate::report::crash::protocol_mismatch(worker, protocol));
            return;
        }
        self.nodes[i].state = NodeState::Ready;
        if self.session.start(&options) {
            self.emit(RunEvent::SessionStart {
                header,
                options: Box::new(options),
                spawn_fallback: self.session.spawn_fallback.clone(),
            });
            let count = self.setup.workers();
            self.emit(RunEvent::WorkersCreated { count });
        }
        if self.stopping.shutting_down {
            self.tell(i, Command::Shutdown);
        }
    }

    /// A collection report: shown once however many workers send it.
    fn on_collect_report(&mut self, i: usize, r: Report) {
        let nodeid = r.nodeid.clone().unwrap_or_default();
        if !self.shown.news_collect_report(i, &nodeid, &r.outcome) {
            return;
        }
        if r.outcome == "failed" {
            self.outcomes.record(Failure::Collection, &nodeid);
        }
        if let (true, Some(ser)) = (self.controller.wants_reports(), &r.ser) {
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
        self.outcomes.done(index);
        self.durations.measured(index, d);
        self.emit_test_event(i, index, true);
        if self.nodes[i].scheduled {
            let key = NodeKey(self.nodes[i].key);
            self.dispatch.complete(key, index, d);
        }
    }

    /// Warnings outside tests come from every worker: shown once.
    fn on_warning(&mut self, w: WarningRecord) {
        if !self.shown.news_warning(&w) {
            return;
        }
        if let (true, Some(sw)) = (self.controller.wants_reports(), &w.summary) {
            match self.controller.has_session {
                true => self.effect(Effect::Session(SessionEvent::Warning(sw.clone()))),
                false => self.controller.summary.warnings.push(sw.clone()),
            }
        }
        self.emit(RunEvent::Warning(Box::new(w)));
    }

    pub(super) fn on_report(&mut self, i: usize, r: Report) {
        if self.collection.tests.is_none() {
            return;
        }
        let nodeid = match (&r.nodeid, r.index) {
            (Some(n), _) => n.clone(),
            (None, Some(idx)) => self.collection.nodeid(idx).unwrap_or_default(),
            (None, None) => String::new(),
        };
        if let Some(idx) = r.index {
            self.nodes[i].running = Some(idx);
            if !r.category.is_empty() {
                self.nodes[i].outcome_of = Some(idx);
            }
        }
        if r.outcome == "failed" && r.xfail.is_none() {
            self.outcomes.record(Failure::Test, &nodeid);
        }
        if let (true, Some(ser)) = (self.controller.wants_reports(), &r.ser) {
            self.keep_report(i, ser);
        }
        let worker = self.nodes[i].id.clone();
        self.emit(RunEvent::TestReport {
            worker,
            nodeid,
            report: Box::new(r),
        });
        let maxfail = self.session.options.maxfail;
        let halts = self
            .stopping
            .stop
            .on_failure(&self.outcomes.ledger, maxfail);
        self.halt(halts);
    }

    /// A serialized report for the plugins' end-of-run hooks: to the controller session as
    /// it arrives (its plugins act on each, as on pytest-xdist's controller), else kept for
    /// the summary step.
    fn keep_report(&mut self, i: usize, ser: &str) {
        let entry = summary_report(&self.nodes[i].id, ser);
        match self.controller.has_session {
            true => self.effect(Effect::Session(SessionEvent::Report(entry))),
            false => self.controller.summary.reports.push(entry),
        }
    }
}
