//! The end of a run: the duration history, pytest-cov, the summary step, `pytest_unconfigure`
//! errors and the exit code.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::events::{RunEvent, RunSummary};
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
        if self.state.restart_for_controller {
            return Ok(RunOutcome {
                exit: 0,
                failed: Vec::new(),
                collection_failed: false,
                needs_controller_session: true,
                controller_session_used: false,
            });
        }
        if let Some(err) = self.state.fatal.take() {
            return Err(err);
        }
        self.state.save_durations();
        let not_run = self.state.not_run();
        if not_run > 0 {
            let s = if not_run == 1 { " was" } else { "s were" };
            self.emit(RunEvent::XdistMessage {
                message: format!("{not_run} test{s} not run"),
            });
        }
        self.finish_coverage();
        self.finish_plugin_summaries();
        let exit_for_hooks = self.state.exit_code();
        let r = self.state.hooks.sessionfinish(exit_for_hooks.code());
        if let Some(sections) = self.state.plugin_result(r) {
            for (plugin, text) in sections {
                self.emit(RunEvent::XdistMessage {
                    message: format!("{plugin}: {}", text.trim_end()),
                });
            }
        }
        if let Some(err) = self.state.fatal.take() {
            return Err(err);
        }
        let state = &mut self.state;
        let exit = state.exit_code();
        let summary = RunSummary {
            exit,
            duration: state.started.elapsed(),
            shouldfail: state.stop.shouldfail.clone(),
            interrupted: state.stop.interrupted.clone(),
        };
        let outcome = RunOutcome {
            exit: exit.code(),
            failed: std::mem::take(&mut state.failed_ids),
            collection_failed: state.ledger.collect_errors > 0,
            needs_controller_session: false,
            controller_session_used: state.controller_reasons_seen,
        };
        if self.state.session_started {
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
                workeroutput: state.worker_outputs.get(&i),
            })
            .collect();
        let failed = state.ledger.failures + state.ledger.crashes;
        let (python, cwd) = (&state.setup.python, &state.setup.cwd);
        let run_time = state.started.elapsed();
        let width = state.setup.width;
        let Some(cov) = crate::pystep::cov::finish(python, cwd, width, &nodes, failed, run_time)
        else {
            return;
        };
        if cov.failed {
            // pytest-cov fails the session (`session.testsfailed += 1`)
            state.ledger.failures += 1;
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
        let mirror = !state.summary.controller_plugins.is_empty() || session.is_some();
        let summary = !state.options.no_summary && (mirror || !state.summary.plugins.is_empty());
        if !state.session_started || !(mirror || summary) {
            return;
        }
        // `pytest_testnodedown` of the workers that finished.
        let nodes = (state.nodes.iter().enumerate())
            .filter_map(|(i, n)| {
                let output = state.worker_outputs.get(&i)?;
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
            reports: &state.summary.reports,
            workerinfo: state.workerinfo_by_id(),
            warnings: &state.summary.warnings,
            exitstatus: state.exit_code().code(),
            collected: state.collection.as_ref().map_or(0, |c| c.len()),
            started: (SystemTime::now().checked_sub(state.started.elapsed()))
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            width: state.setup.width,
            color: state.setup.color,
            nodes,
        };
        let result = match (session, state.summary.result.take()) {
            (Some(session), _) => session.finish(&input).map(|(text, exitstatus)| {
                state.session_exit = exitstatus.and_then(ExitCode::from_code);
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
            Err(err) => {
                // pytest itself dies of it (a traceback, no summary line); we keep the
                // summary line and show the traceback where the hooks' text would be.
                state.stop.internal_error = true;
                let text: String = format!("failed to run plugins' end-of-run hooks:\n{err}")
                    .trim_end()
                    .lines()
                    .map(|l| format!("INTERNALERROR> {l}\n"))
                    .collect();
                self.emit(RunEvent::PluginSummary { text });
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

    /// The summary step needs every report (see `summary.rs`).
    pub(super) fn wants_summary_reports(&self) -> bool {
        !self.summary.plugins.is_empty()
            || !self.summary.controller_plugins.is_empty()
            || self.has_controller_session
    }

    /// `<cache_dir>/v/xdist/durations`, unless the cache is disabled (`-p no:cacheprovider`).
    pub(super) fn history_path(&self) -> Option<PathBuf> {
        let dir = self
            .options
            .cache_dir
            .as_deref()
            .filter(|d| !d.is_empty())?;
        Some(durations::history_path(Path::new(dir)))
    }

    /// The duration history, read on first use (the workers report pytest's `cache_dir`).
    pub(super) fn history(&mut self) -> Option<&durations::History> {
        let path = self.history_path()?;
        Some(
            self.history
                .get_or_insert_with(|| durations::History::load(&path)),
        )
    }

    pub(super) fn save_durations(&mut self) {
        let (Some(path), Some(collection)) = (self.history_path(), self.collection.clone()) else {
            return;
        };
        if self.collection_complete && self.ledger.collect_errors == 0 {
            if let (Some(dir), Some(key)) =
                (self.options.cache_dir.as_deref(), &self.setup.args_key)
            {
                let _ = durations::record_collection_size(Path::new(dir), key, collection.len());
            }
        }
        if self.run_durations.is_empty() {
            return;
        }
        let measured = self
            .run_durations
            .iter()
            .filter_map(|(&i, &d)| collection.ids.get(i).map(|id| (id.as_str(), d)));
        let history = self
            .history
            .get_or_insert_with(|| durations::History::load(&path));
        history.record(measured);
        // The history is a cache: failing to write it must not fail the run.
        let _ = history.save(&path);
    }

    /// Collected tests that never ended (neither finished nor crashed), unless the run was
    /// stopped on purpose (Ctrl-C, `-x`/`--maxfail`, collection errors).
    pub(super) fn not_run(&self) -> usize {
        let Some(collection) = &self.collection else {
            return 0;
        };
        if !self.collection_complete || self.stop.stopped_on_purpose() {
            return 0;
        }
        let ended = self.done_tests.union(&self.crashed_tests).count();
        collection.len().saturating_sub(ended)
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
        if let Some(exit) = self.session_exit {
            // The controller session's, after its `pytest_sessionfinish` hooks.
            return exit;
        }
        let end = EndFacts {
            unconfigure_failed: self.every_unconfigure_failed().is_some(),
            not_run: self.not_run(),
            nothing_collected: self.collection.as_ref().is_none_or(|c| c.is_empty())
                && !self.empty_shard(),
        };
        self.stop.reason(&self.ledger, end).exit()
    }

    /// `shutdown`, or `linger` for the first worker to end while the summary step is
    /// wanted: that one runs it once every other worker is gone (see `maybe_summarize`).
    pub(super) fn shutdown_command(&mut self, i: usize) -> Command {
        // Controller-only plugins need the summary step's own process anyway, and a
        // controller session runs the hooks itself.
        let wanted = !self.summary.plugins.is_empty()
            && !self.options.no_summary
            && self.summary.controller_plugins.is_empty()
            && !self.has_controller_session;
        if wanted && self.summary.node.is_none() && self.nodes[i].is_ready() {
            self.summary.node = Some(i);
            Command::Linger
        } else {
            Command::Shutdown
        }
    }

    /// Sends `summarize` to the lingering worker once it is the last one left.
    pub(super) fn maybe_summarize(&mut self) {
        let Some(s) = self.summary.node else {
            return;
        };
        let lingering = self.nodes[s].ending == Ending::Lingering;
        if self.summary.sent || !lingering || !self.nodes[s].is_running() {
            return;
        }
        let others_done = (self.nodes.iter().enumerate())
            .all(|(j, n)| j == s || (!n.is_running() && n.pipes.ended(Pipe::Channel)));
        if !others_done {
            return;
        }
        self.summary.sent = true;
        let size: usize = (self.summary.reports.iter().chain(&self.summary.warnings))
            .map(|r| r.len() + 4)
            .sum();
        if size > SUMMARIZE_MAX_BYTES {
            // Too big for one frame: the summary step runs in a process of its own.
            self.send(s, vec![Command::Shutdown]);
            return;
        }
        let summarize = Command::Summarize {
            reports: std::mem::take(&mut self.summary.reports),
            workerinfo: self.workerinfo_by_id(),
            warnings: std::mem::take(&mut self.summary.warnings),
            exitstatus: self.exit_code().code(),
        };
        self.send(s, vec![summarize, Command::Shutdown]);
    }
}
