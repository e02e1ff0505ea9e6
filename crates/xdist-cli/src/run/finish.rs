//! The end of a run: the duration history, pytest-cov, the summary step, `pytest_unconfigure`
//! errors and the exit code.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::events::{RunEvent, RunSummary, XdistNote};
use serde_json::{json, Map, Value};
use xdist_core::exit::ExitCode;
use xdist_core::protocol::Command;

use crate::error::CliError;
use crate::run::durations;
use crate::run::state::EndFacts;

use super::controller::{Controller, RunOutcome};
use super::node::{Ending, Pipe};
use super::run_state::RunState;

/// Largest `summarize` command sent to a worker (frames stop at 64 MiB).
pub(super) const SUMMARIZE_MAX_BYTES: usize = 32 << 20;

/// One report for the summary step: `{"w": worker id, "r": the serialized report}`.
pub(super) fn summary_report(worker: &str, ser: &str) -> String {
    format!("{{\"w\":{},\"r\":{ser}}}", json!(worker))
}

impl Controller<'_> {
    /// After the loop: the end-of-run steps in pytest's order, then the summary.
    pub(super) fn finish_run(mut self) -> Result<RunOutcome, CliError> {
        if self.state.controller.start_over {
            return Ok(RunOutcome {
                exit: 0,
                failed: Vec::new(),
                collection_failed: false,
                needs_controller_session: true,
                controller_session_used: false,
            });
        }
        if let Some(err) = self.state.stopping.fatal.take() {
            return Err(err);
        }
        self.state.save_durations();
        let count = self.state.not_run();
        if count > 0 {
            self.emit(RunEvent::Xdist(XdistNote::NotRun { count }));
        }
        self.finish_coverage();
        self.finish_plugin_summaries();
        let exit_for_hooks = self.state.exit_code();
        let r = self.state.hooks.sessionfinish(exit_for_hooks.code());
        if let Some(sections) = self.state.plugin_result(r) {
            for (plugin, text) in sections {
                let note = XdistNote::PluginSection { plugin, text };
                self.emit(RunEvent::Xdist(note));
            }
        }
        if let Some(err) = self.state.stopping.fatal.take() {
            return Err(err);
        }
        let state = &mut self.state;
        let exit = state.exit_code();
        let summary = RunSummary {
            exit,
            duration: state.started.elapsed(),
            shouldfail: state.stopping.stop.shouldfail.clone(),
            interrupted: state.stopping.stop.interrupted.clone(),
        };
        let outcome = RunOutcome {
            exit: exit.code(),
            failed: state.outcomes.take_failed(),
            collection_failed: state.outcomes.ledger.collect_errors > 0,
            needs_controller_session: false,
            controller_session_used: state.controller.reasons_seen,
        };
        if self.state.session.started {
            self.emit(RunEvent::RunFinished(summary));
        }
        self.report_unconfigure_errors();
        Ok(outcome)
    }

    /// pytest-cov: combine the workers' coverage and report it, as its `DistMaster` would.
    fn finish_coverage(&mut self) {
        let state = &mut self.state;
        let nodes: Vec<crate::pystep::cov::CovNode> = (state.nodes.iter().enumerate())
            .map(|(i, n)| crate::pystep::cov::CovNode {
                id: &n.id,
                workerinfo: &n.workerinfo,
                workeroutput: state.outcomes.worker_outputs.get(&i),
            })
            .collect();
        let failed = state.outcomes.ledger.failures + state.outcomes.ledger.crashes;
        let (python, cwd) = (&state.setup.python, &state.setup.cwd);
        let run_time = state.started.elapsed();
        let width = state.setup.width;
        let Some(cov) = crate::pystep::cov::finish(python, cwd, width, &nodes, failed, run_time)
        else {
            return;
        };
        if cov.failed {
            // pytest-cov fails the session (`session.testsfailed += 1`)
            state.outcomes.ledger.failures += 1;
        }
        self.emit(RunEvent::Coverage {
            error: cov.error,
            report: cov.report,
            required: cov.required,
        });
    }

    /// The summary step: controller-only plugins replay the run, then the user's
    /// `pytest_terminal_summary` hooks run over every report.
    fn finish_plugin_summaries(&mut self) {
        let session = self.controller_session.take();
        let state = &mut self.state;
        let step = &state.controller.summary;
        let mirror = !step.controller_plugins.is_empty() || session.is_some();
        let summary = !state.session.options.no_summary && (mirror || !step.plugins.is_empty());
        if !state.session.started || !(mirror || summary) {
            return;
        }
        // `pytest_testnodedown` of the workers that finished.
        let nodes = (state.nodes.iter().enumerate())
            .filter_map(|(i, n)| {
                let output = state.outcomes.worker_outputs.get(&i)?;
                Some(json!({
                    "id": n.id,
                    "spec": state.setup.specs[n.spec].raw,
                    "workeroutput": output,
                    "workerinfo": n.workerinfo,
                    "error": Value::Null,
                }))
            })
            .collect();
        let input = crate::pystep::summary::SummaryInput {
            args: &state.setup.opts.pytest_args,
            mirror,
            summary,
            numprocesses: state.setup.workers(),
            reports: &state.controller.summary.reports,
            workerinfo: state.workerinfo_by_id(),
            warnings: &state.controller.summary.warnings,
            exitstatus: state.exit_code().code(),
            collected: state.collection.len(),
            started: (SystemTime::now().checked_sub(state.started.elapsed()))
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            width: state.setup.width,
            color: state.setup.color,
            nodes,
        };
        let result = match (session, state.controller.summary.result.take()) {
            (Some(session), _) => session.finish(&input).map(|(text, exitstatus)| {
                state.controller.session_exit = exitstatus.and_then(ExitCode::from_code);
                text
            }),
            (None, Some(r)) => r,
            // No worker was left to run it (stopped, crashed, or too much to send).
            (None, None) => {
                crate::pystep::summary::run(&state.setup.python, &state.setup.cwd, &input)
            }
        };
        match result {
            Ok(text) => {
                if !text.is_empty() {
                    self.emit(RunEvent::PluginSummary { text });
                }
            }
            Err(error) => {
                // pytest itself dies of it: an internal error.
                state.stopping.stop.internal_error = true;
                self.emit(RunEvent::PluginSummaryFailed { error });
            }
        }
    }

    /// After the summary, as pytest: the traceback when every worker's `pytest_unconfigure`
    /// raised (it stands for the controller's), else each worker's whose did.
    fn report_unconfigure_errors(&mut self) {
        if let Some(text) = self.state.every_unconfigure_failed().map(str::to_string) {
            self.emit(RunEvent::UnconfigureError {
                worker: None,
                traceback: text,
            });
            return;
        }
        let errors: Vec<(String, String)> = (self.state.nodes.iter())
            .filter_map(|n| Some((n.id.clone(), n.unconfigure_error.clone()?)))
            .collect();
        for (id, traceback) in errors {
            self.emit(RunEvent::UnconfigureError {
                worker: Some(id),
                traceback,
            });
        }
    }
}

impl RunState<'_> {
    /// `workerinfo` of every worker by id, for the summary step's `report.node`.
    pub(super) fn workerinfo_by_id(&self) -> Map<String, Value> {
        (self.nodes.iter())
            .filter(|n| !n.workerinfo.is_empty())
            .map(|n| (n.id.clone(), Value::Object(n.workerinfo.clone())))
            .collect()
    }

    /// `<cache_dir>/v/xdist/durations`, unless the cache is disabled (`-p no:cacheprovider`).
    pub(super) fn history_path(&self) -> Option<PathBuf> {
        let dir = (self.session.options.cache_dir)
            .as_deref()
            .filter(|d| !d.is_empty())?;
        Some(durations::history_path(Path::new(dir)))
    }

    /// The duration history, read on first use (the workers report pytest's `cache_dir`).
    pub(super) fn history(&mut self) -> Option<&durations::History> {
        let path = self.history_path()?;
        Some(self.durations.history(&path))
    }

    pub(super) fn save_durations(&mut self) {
        let (Some(path), Some(collection)) = (self.history_path(), self.collection.tests.clone())
        else {
            return;
        };
        if self.collection.complete && self.outcomes.ledger.collect_errors == 0 {
            if let (Some(dir), Some(key)) = (
                self.session.options.cache_dir.as_deref(),
                &self.setup.args_key,
            ) {
                let _ = durations::record_collection_size(Path::new(dir), key, collection.len());
            }
        }
        self.durations.save(&path, &collection.ids);
    }

    /// Collected tests that never ended (neither finished nor crashed), unless the run was
    /// stopped on purpose (Ctrl-C, `-x`/`--maxfail`, collection errors).
    pub(super) fn not_run(&self) -> usize {
        let Some(collection) = &self.collection.tests else {
            return 0;
        };
        if !self.collection.complete || self.stopping.stop.stopped_on_purpose() {
            return 0;
        }
        self.outcomes.not_ended(collection.len())
    }

    /// pytest exits 1 with the traceback when `pytest_unconfigure` raises; pytest-xdist's
    /// controller too, and it ignores what its workers raise there. With no Python controller
    /// here, an error every worker raised stands for the controller's: its traceback.
    pub(super) fn every_unconfigure_failed(&self) -> Option<&str> {
        let mut finished = self.nodes.iter().filter(|n| n.is_finished()).peekable();
        finished.peek()?;
        let mut first = None;
        for n in finished {
            first = first.or(Some(n.unconfigure_error.as_deref()?));
        }
        first
    }

    pub(super) fn exit_code(&self) -> ExitCode {
        if let Some(exit) = self.controller.session_exit {
            // The controller session's, after its `pytest_sessionfinish` hooks.
            return exit;
        }
        let end = EndFacts {
            unconfigure_failed: self.every_unconfigure_failed().is_some(),
            not_run: self.not_run(),
            nothing_collected: self.collection.len() == 0 && !self.dispatch.shard.empty(),
        };
        self.stopping.stop.reason(&self.outcomes.ledger, end).exit()
    }

    /// `shutdown`, or `linger` for the first worker to end while the summary step is
    /// wanted: that one runs it once every other worker is gone (see `maybe_summarize`).
    pub(super) fn shutdown_command(&mut self, i: usize) -> Command {
        let wanted = (self.controller).summary_in_worker(self.session.options.no_summary);
        let summary = &mut self.controller.summary;
        if wanted && summary.node.is_none() && self.nodes[i].is_ready() {
            summary.node = Some(i);
            Command::Linger
        } else {
            Command::Shutdown
        }
    }

    /// Sends `summarize` to the lingering worker once it is the last one left.
    pub(super) fn maybe_summarize(&mut self) {
        let Some(s) = self.controller.summary.node else {
            return;
        };
        let lingering = self.nodes[s].ending == Ending::Lingering;
        if self.controller.summary.sent || !lingering || !self.nodes[s].is_running() {
            return;
        }
        let others_done = (self.nodes.iter().enumerate())
            .all(|(j, n)| j == s || (!n.is_running() && n.pipes.ended(Pipe::Channel)));
        if !others_done {
            return;
        }
        let summary = &mut self.controller.summary;
        summary.sent = true;
        let size: usize = (summary.reports.iter().chain(&summary.warnings))
            .map(|r| r.len() + 4)
            .sum();
        if size > SUMMARIZE_MAX_BYTES {
            // Too big for one frame: the summary step runs in a process of its own.
            self.send(s, vec![Command::Shutdown]);
            return;
        }
        let summarize = Command::Summarize {
            reports: std::mem::take(&mut self.controller.summary.reports),
            workerinfo: self.workerinfo_by_id(),
            warnings: std::mem::take(&mut self.controller.summary.warnings),
            exitstatus: self.exit_code().code(),
        };
        self.send(s, vec![summarize, Command::Shutdown]);
    }
}
