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

/// Largest `summarize` command sent to a worker (frames stop at 64 MiB).
pub(super) const SUMMARIZE_MAX_BYTES: usize = 32 << 20;

/// One report for the summary step: `{"w": worker id, "r": the serialized report}`.
pub(super) fn summary_report(worker: &str, ser: &str) -> String {
    format!("{{\"w\":{},\"r\":{ser}}}", json!(worker))
}

impl Controller<'_> {
    /// After the loop: the end-of-run steps in pytest's order, then the summary.
    pub(super) fn finish_run(mut self) -> Result<RunOutcome, CliError> {
        if self.restart_for_controller {
            return Ok(RunOutcome {
                exit: 0,
                failed: Vec::new(),
                collection_failed: false,
                needs_controller_session: true,
                controller_session_used: false,
            });
        }
        if let Some(err) = self.fatal.take() {
            return Err(err);
        }
        self.save_durations();
        let not_run = self.not_run();
        if not_run > 0 {
            let s = if not_run == 1 { " was" } else { "s were" };
            self.emit(RunEvent::XdistMessage {
                message: &format!("{not_run} test{s} not run"),
            });
        }
        self.finish_coverage();
        self.finish_plugin_summaries();
        let exit_for_hooks = self.exit_code();
        let r = self.host.sessionfinish(exit_for_hooks.code());
        if let Some(sections) = self.plugin_result(r) {
            for (plugin, text) in sections {
                self.emit(RunEvent::XdistMessage {
                    message: &format!("{plugin}: {}", text.trim_end()),
                });
            }
        }
        if let Some(err) = self.fatal.take() {
            return Err(err);
        }
        let exit = self.exit_code();
        let summary = RunSummary {
            exit,
            duration: self.started.elapsed(),
            shouldfail: self.stop.shouldfail.clone(),
            interrupted: self.stop.interrupted.clone(),
        };
        if self.session_started {
            self.emit(RunEvent::RunFinished(&summary));
        }
        self.report_unconfigure_errors();
        Ok(RunOutcome {
            exit: exit.code(),
            failed: std::mem::take(&mut self.failed_ids),
            collection_failed: self.ledger.collect_errors > 0,
            needs_controller_session: false,
            controller_session_used: self.controller_reasons_seen,
        })
    }

    /// pytest-cov: combine the workers' coverage and report it, as its `DistMaster` would.
    pub(super) fn finish_coverage(&mut self) {
        let nodes: Vec<crate::pystep::cov::CovNode> = (self.nodes.iter().enumerate())
            .map(|(i, n)| crate::pystep::cov::CovNode {
                id: &n.id,
                workerinfo: &n.workerinfo,
                workeroutput: self.worker_outputs.get(&i),
            })
            .collect();
        let failed = self.ledger.failures + self.ledger.crashes;
        let (python, cwd) = (&self.setup.python, &self.setup.cwd);
        let run_time = self.started.elapsed();
        let width = self.setup.width;
        let Some(cov) = crate::pystep::cov::finish(python, cwd, width, &nodes, failed, run_time)
        else {
            return;
        };
        self.emit(RunEvent::Coverage {
            error: cov.error.as_deref(),
            report: &cov.report,
            required: cov.required.as_ref().map(|(m, f)| (m.as_str(), *f)),
        });
        if cov.failed {
            self.ledger.failures += 1; // pytest-cov fails the session (`session.testsfailed += 1`)
        }
    }

    /// `workerinfo` of every worker by id, for the summary step's `report.node`.
    pub(super) fn workerinfo_by_id(&self) -> Map<String, Value> {
        (self.nodes.iter())
            .filter(|n| !n.workerinfo.is_empty())
            .map(|n| (n.id.clone(), Value::Object(n.workerinfo.clone())))
            .collect()
    }

    /// The summary step needs every report (see `summary.rs`).
    pub(super) fn wants_summary_reports(&self) -> bool {
        !self.summary_plugins.is_empty()
            || !self.controller_plugins.is_empty()
            || self.controller_session.is_some()
    }

    /// The summary step: controller-only plugins replay the run, then the user's
    /// `pytest_terminal_summary` hooks run over every report.
    pub(super) fn finish_plugin_summaries(&mut self) {
        let session = self.controller_session.take();
        let mirror = !self.controller_plugins.is_empty() || session.is_some();
        let summary = !self.options.no_summary && (mirror || !self.summary_plugins.is_empty());
        if !self.session_started || !(mirror || summary) {
            return;
        }
        // `pytest_testnodedown` of the workers that finished.
        let nodes = (self.nodes.iter().enumerate())
            .filter_map(|(i, n)| {
                let output = self.worker_outputs.get(&i)?;
                Some(json!({
                    "id": n.id,
                    "spec": self.setup.specs[n.spec].raw,
                    "workeroutput": output,
                    "workerinfo": n.workerinfo,
                    "error": Value::Null,
                }))
            })
            .collect();
        let input = crate::pystep::summary::SummaryInput {
            args: &self.setup.opts.pytest_args,
            mirror,
            summary,
            numprocesses: self.setup.workers(),
            reports: &self.summary_reports,
            workerinfo: self.workerinfo_by_id(),
            warnings: &self.summary_warnings,
            exitstatus: self.exit_code().code(),
            collected: self.collection.as_ref().map_or(0, |c| c.len()),
            started: (SystemTime::now().checked_sub(self.started.elapsed()))
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            width: self.setup.width,
            color: self.setup.color,
            nodes,
        };
        let result = match (session, self.summary_result.take()) {
            (Some(session), _) => session.finish(&input).map(|(text, exitstatus)| {
                self.session_exit = exitstatus.and_then(ExitCode::from_code);
                text
            }),
            (None, Some(r)) => r,
            // No worker was left to run it (stopped, crashed, or too much to send).
            (None, None) => {
                crate::pystep::summary::run(&self.setup.python, &self.setup.cwd, &input)
            }
        };
        match result {
            Ok(text) => {
                if !text.is_empty() {
                    self.emit(RunEvent::PluginSummary { text: &text });
                }
            }
            Err(err) => {
                // pytest itself dies of it (a traceback, no summary line); we keep the
                // summary line and show the traceback where the hooks' text would be.
                self.stop.internal_error = true;
                let text: String = format!("failed to run plugins' end-of-run hooks:\n{err}")
                    .trim_end()
                    .lines()
                    .map(|l| format!("INTERNALERROR> {l}\n"))
                    .collect();
                self.emit(RunEvent::PluginSummary { text: &text });
            }
        }
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

    /// After the summary, as pytest: the traceback when every worker's `pytest_unconfigure`
    /// raised (it stands for the controller's), else each worker's whose did.
    pub(super) fn report_unconfigure_errors(&mut self) {
        if let Some(text) = self.every_unconfigure_failed().map(str::to_string) {
            let traceback = &text;
            self.emit(RunEvent::UnconfigureError {
                worker: None,
                traceback,
            });
            return;
        }
        let errors: Vec<(String, String)> = (self.nodes.iter())
            .filter_map(|n| Some((n.id.clone(), n.unconfigure_error.clone()?)))
            .collect();
        for (id, traceback) in &errors {
            self.emit(RunEvent::UnconfigureError {
                worker: Some(id),
                traceback,
            });
        }
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
        let wanted = !self.summary_plugins.is_empty()
            && !self.options.no_summary
            && self.controller_plugins.is_empty()
            && self.controller_session.is_none();
        if wanted && self.summary_node.is_none() && self.nodes[i].is_ready() {
            self.summary_node = Some(i);
            Command::Linger
        } else {
            Command::Shutdown
        }
    }

    /// Sends `summarize` to the lingering worker once it is the last one left.
    pub(super) fn maybe_summarize(&mut self) {
        let Some(s) = self.summary_node else {
            return;
        };
        if self.summary_sent || !self.nodes[s].lingering || self.nodes[s].exited.is_some() {
            return;
        }
        let others_done = (self.nodes.iter().enumerate())
            .all(|(j, n)| j == s || (n.exited.is_some() && n.channel_done));
        if !others_done {
            return;
        }
        self.summary_sent = true;
        let size: usize = (self.summary_reports.iter().chain(&self.summary_warnings))
            .map(|r| r.len() + 4)
            .sum();
        if size > SUMMARIZE_MAX_BYTES {
            // Too big for one frame: the summary step runs in a process of its own.
            self.nodes[s].handle.send(&[Command::Shutdown]);
            return;
        }
        let summarize = Command::Summarize {
            reports: std::mem::take(&mut self.summary_reports),
            workerinfo: self.workerinfo_by_id(),
            warnings: std::mem::take(&mut self.summary_warnings),
            exitstatus: self.exit_code().code(),
        };
        self.nodes[s].handle.send(&[summarize, Command::Shutdown]);
    }
}
