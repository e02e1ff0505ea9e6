//! The terminal reporter: pytest's `TerminalReporter` as pytest-xdist drives it, fed by run
//! events. Everything that needs pytest objects (status words, tracebacks, short-summary
//! lines) was rendered by the worker; this module only arranges it as pytest would.

use std::collections::{HashMap, HashSet};

use crate::report::events::{CrashMoment, Reporter, RunEvent, RunSummary, WorkerCrash};
use xdist_core::protocol::{Report, ReportOptions, WarningRecord};

use crate::pystep::cov::CovOutcome;
use crate::report::crash;
use crate::report::status::StatusHandle;
use crate::report::termwriter::TermWriter;

/// The end-of-run sections: failures, errors, warnings, durations, short summary, stats.
#[path = "terminal_summary.rs"]
mod summary;

/// pytest's `KNOWN_TYPES`: the order of the summary line.
const KNOWN_TYPES: &[&str] = &[
    "failed",
    "passed",
    "skipped",
    "deselected",
    "xfailed",
    "xpassed",
    "warnings",
    "error",
    "subtests passed",
    "subtests failed",
    "subtests skipped",
];

fn color_for_type(key: &str) -> &'static str {
    match key {
        "failed" | "error" | "subtests failed" => "red",
        "warnings" => "yellow",
        "passed" | "subtests passed" => "green",
        _ => "yellow",
    }
}

/// Where a skip happened and why: `(path, line, reason)`, the key skips are folded by.
type SkipKey = (String, Option<u64>, String);

/// A report kept for the end-of-run summary.
struct Stored {
    nodeid: String,
    report: Report,
}

/// Where the cursor is, as pytest's `currentfspath` tracks it.
#[derive(PartialEq)]
enum LineState {
    /// At the start of a line (pytest: `None`).
    Clean,
    /// A `-v` location prefix was written and awaits its word.
    Prefix(String),
    /// Something was written after a prefix (pytest: `-2`).
    Dirty,
    /// A worker's `-s` output line awaits its next piece.
    WorkerOutput(String),
}

pub struct TerminalReporter {
    tw: TermWriter,
    opts: ReportOptions,
    quiet_before_start: bool,
    /// stdout is a terminal: pytest-xdist's worker status lines rewrite each other there.
    isatty: bool,
    /// Width of the status line written last and still open for rewriting.
    status_len: Option<usize>,
    /// Category -> indices into `reports`, in first-seen order of categories.
    stats: Vec<(String, Vec<usize>)>,
    /// Reports per category that count in the summary line.
    stat_counts: HashMap<String, usize>,
    reports: Vec<Stored>,
    warnings: Vec<WarningRecord>,
    deselected: usize,
    /// Teardown sections text by node id (for FAILURES/PASSES).
    teardown_sections: HashMap<String, Vec<String>>,
    progress_reported: HashSet<String>,
    collected: usize,
    state: LineState,
    main_color: &'static str,
    xdist_messages: Vec<String>,
    started: bool,
    /// The live status line (a terminal, not quiet).
    status: Option<StatusHandle>,
    /// pytest-cov's results: error line, report section, required-coverage line.
    coverage: Option<CovOutcome>,
    /// What the user's `pytest_terminal_summary` hooks wrote (the summary step).
    plugin_summary: String,
}

impl TerminalReporter {
    pub fn new(tw: TermWriter, quiet: bool) -> Self {
        TerminalReporter {
            tw,
            opts: ReportOptions::default(),
            quiet_before_start: quiet,
            isatty: false,
            status_len: None,
            stats: Vec::new(),
            stat_counts: HashMap::new(),
            reports: Vec::new(),
            warnings: Vec::new(),
            deselected: 0,
            teardown_sections: HashMap::new(),
            progress_reported: HashSet::new(),
            collected: 0,
            state: LineState::Clean,
            main_color: "green",
            xdist_messages: Vec::new(),
            started: false,
            status: None,
            coverage: None,
            plugin_summary: String::new(),
        }
    }

    /// Shows a live status line; `tw` must write through the status area's writer.
    pub fn with_status(mut self, status: Option<StatusHandle>) -> Self {
        self.status = status;
        self
    }

    pub fn with_isatty(mut self, isatty: bool) -> Self {
        self.isatty = isatty;
        self
    }

    /// pytest-xdist's worker status line: on a terminal each status rewrites the one before
    /// in place (`\r`) and only the `last` ends the line; elsewhere each is a line of its own.
    fn status_line(&mut self, line: &str, markup: &[&str], last: bool) {
        match self.status_len.take() {
            Some(len) if self.state == LineState::Dirty => {
                let pad =
                    " ".repeat(len.saturating_sub(crate::report::termwriter::display_width(line)));
                self.tw.write(&format!("\r{line}{pad}"), markup);
            }
            _ => {
                self.ensure_newline();
                self.tw.write(line, markup);
            }
        }
        if self.isatty && !last {
            self.state = LineState::Dirty;
            self.status_len = Some(crate::report::termwriter::display_width(line));
        } else {
            self.tw.line("", &[]);
            self.state = LineState::Clean;
        }
    }

    fn verbosity(&self) -> i32 {
        self.opts.verbose
    }

    fn hasopt(&self, c: char) -> bool {
        self.opts.reportchars.contains(c)
    }

    fn ensure_newline(&mut self) {
        if self.state != LineState::Clean {
            self.tw.line("", &[]);
            self.state = LineState::Clean;
        }
    }

    fn write_line(&mut self, line: &str, markup: &[&str]) {
        self.ensure_newline();
        self.tw.line(line, markup);
    }

    fn write_sep(&mut self, ch: char, title: Option<&str>, markup: &[&str]) {
        self.ensure_newline();
        self.tw.sep(ch, title, markup, None);
    }

    fn stat_len(&self, key: &str) -> usize {
        self.stat_counts.get(key).copied().unwrap_or(0)
    }

    fn stat_reports(&self, key: &str) -> Vec<usize> {
        self.stats
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn has_stat(&self, key: &str) -> bool {
        match key {
            "warnings" => !self.warnings.is_empty(),
            "deselected" => self.deselected > 0,
            _ => self.stats.iter().any(|(k, _)| k == key),
        }
    }

    /// Counts a report in its category and, when the summary may need it, keeps it.
    fn add_stat(&mut self, category: &str, idx: Option<usize>, counts: bool) {
        if counts {
            *self.stat_counts.entry(category.to_string()).or_insert(0) += 1;
        }
        match self.stats.iter_mut().find(|(k, _)| k == category) {
            Some((_, v)) => v.extend(idx),
            None => {
                self.stats
                    .push((category.to_string(), idx.into_iter().collect()));
                self.set_main_color();
            }
        }
    }

    /// Whether a report can appear in an end-of-run section. Most passing reports cannot;
    /// keeping them would make the controller's memory grow with the suite.
    fn worth_keeping(&self, r: &Report) -> bool {
        self.opts.durations.is_some()
            || r.body.is_some()
            || r.short.is_some()
            || r.skip.is_some()
            || r.xfail.is_some()
            || matches!(
                r.category.as_str(),
                "failed" | "error" | "xfailed" | "xpassed" | "skipped"
            )
            || (r.category == "passed" && (self.hasopt('p') || self.hasopt('P')))
    }

    fn is_last_item(&self) -> bool {
        self.progress_reported.len() == self.collected
    }

    fn unknown_types(&self) -> Vec<String> {
        self.stats
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && !KNOWN_TYPES.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    fn set_main_color(&mut self) {
        let unknown = !self.unknown_types().is_empty();
        self.main_color = if self.has_stat("failed") || self.has_stat("error") {
            "red"
        } else if self.has_stat("warnings") || self.has_stat("xpassed") || unknown {
            "yellow"
        } else if self.has_stat("passed") || !self.is_last_item() {
            "green"
        } else {
            "yellow"
        };
    }

    fn main_color(&mut self) -> &'static str {
        if self.is_last_item() {
            self.set_main_color();
        }
        self.main_color
    }

    fn progress_message(&self) -> String {
        let collected = self.collected;
        if self.opts.progress == "count" {
            if collected > 0 {
                let w = collected.to_string().len();
                return format!(" [{:>w$}/{}]", self.progress_reported.len(), collected);
            }
            return format!(" [ {collected} / {collected} ]");
        }
        match (self.progress_reported.len() * 100).checked_div(collected) {
            Some(pct) => format!(" [{:>3}%]", pct.min(100)),
            None => " [100%]".to_string(),
        }
    }

    fn show_progress(&self) -> bool {
        !self.opts.progress.is_empty() && self.opts.progress != "times"
    }

    fn write_progress_if_past_edge(&mut self) {
        let w = self.tw.width_of_current_line();
        let progress_length = if self.opts.progress == "count" {
            let n = self.collected;
            format!(" [{n}/{n}]").len()
        } else {
            " [100%]".len()
        };
        if w + progress_length + 1 >= self.tw.fullwidth {
            let color = self.main_color();
            let msg = self.progress_message();
            self.tw.write(&format!("{msg}\n"), &[color]);
        }
    }

    fn write_progress_filling_space(&mut self) {
        let color = self.main_color();
        let msg = self.progress_message();
        let w = self.tw.width_of_current_line();
        let fill = self.tw.fullwidth.saturating_sub(w + 1);
        let padded = format!("{msg:>fill$}");
        self.tw.write(&padded, &[color]);
        self.tw.flush();
    }

    fn markup_of(report: &Report) -> Vec<&'static str> {
        if let Some(m) = &report.markup {
            return m
                .iter()
                .filter(|(_, v)| v.as_bool().unwrap_or(false))
                .filter_map(|(k, _)| static_markup(k))
                .collect();
        }
        let was_xfail = report.xfail.is_some();
        match report.outcome.as_str() {
            "passed" if !was_xfail => vec!["green"],
            "passed" => vec!["yellow"],
            "failed" => vec!["red"],
            "skipped" => vec!["yellow"],
            _ => vec![],
        }
    }

    fn test_report(&mut self, worker: &str, nodeid: &str, report: &Report) {
        let idx = if self.worth_keeping(report) {
            self.reports.push(Stored {
                nodeid: nodeid.to_string(),
                report: report.clone(),
            });
            Some(self.reports.len() - 1)
        } else {
            None
        };
        if let Some(tds) = &report.tds {
            self.teardown_sections
                .entry(nodeid.to_string())
                .or_default()
                .push(tds.clone());
        }
        self.add_stat(&report.category, idx, report.counts);
        if report.letter.is_empty() && report.word.is_empty() {
            return;
        }
        let markup = Self::markup_of(report);
        self.progress_reported.insert(nodeid.to_string());
        if self.verbosity() <= 0 {
            if matches!(self.state, LineState::WorkerOutput(_)) {
                self.ensure_newline();
            }
            self.tw.write(&report.letter, &markup);
            if self.show_progress() && !self.is_last_item() {
                self.write_progress_if_past_edge();
            }
        } else {
            let line = report.loc.clone().unwrap_or_else(|| format!("{nodeid} "));
            self.ensure_newline();
            self.tw.write(&format!("[{worker}]"), &[]);
            if self.show_progress() {
                let msg = self.progress_message();
                self.tw.write(&format!("{msg} "), &["cyan"]);
            } else {
                self.tw.write(" ", &[]);
            }
            self.tw.write(&report.word, &markup);
            self.tw.write(&format!(" {line}"), &[]);
            self.state = LineState::Dirty;
        }
        self.tw.flush_soon();
    }

    fn collect_report(&mut self, _worker: &str, nodeid: &str, report: &Report) {
        let idx = self.reports.len();
        self.reports.push(Stored {
            nodeid: nodeid.to_string(),
            report: report.clone(),
        });
        if report.outcome == "failed" {
            self.add_stat("error", Some(idx), report.counts);
        } else if report.outcome == "skipped" {
            self.add_stat("skipped", Some(idx), report.counts);
        }
    }
}

fn static_markup(name: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "black", "red", "green", "yellow", "blue", "purple", "cyan", "white", "Black", "Red",
        "Green", "Yellow", "Blue", "Purple", "Cyan", "White", "bold", "light", "blink", "invert",
    ];
    NAMES.iter().copied().find(|n| *n == name)
}

impl Reporter for TerminalReporter {
    fn wants_ticks(&self) -> bool {
        self.status.as_ref().is_some_and(StatusHandle::active)
    }

    fn event(&mut self, event: &RunEvent) {
        if let Some(status) = &self.status {
            status.event(event);
            if let RunEvent::RunFinished(_) = event {
                status.finish();
            }
        }
        self.terminal_event(event);
        if self.status.is_some() {
            // Redraws the status line below what was written.
            self.tw.flush();
        }
    }
}

impl TerminalReporter {
    fn terminal_event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::SessionStart {
                header,
                options,
                spawn_fallback,
            } => self.session_start(header, options, spawn_fallback.as_deref()),
            RunEvent::CollectionComplete {
                workers,
                items,
                deselected,
                lines,
                scheduler,
                ..
            } => self.collection_complete(*workers, *items, *deselected, lines, scheduler),
            RunEvent::TestStart { loc, .. } => {
                if self.verbosity() > 0 {
                    let prefix = loc.to_string();
                    if self.state != LineState::Prefix(prefix.clone()) {
                        self.tw.line("", &[]);
                        self.tw.write(&prefix, &[]);
                        self.state = LineState::Prefix(prefix);
                    }
                    self.tw.flush();
                }
            }
            RunEvent::TestReport {
                worker,
                nodeid,
                report,
            } => self.test_report(worker, nodeid, report),
            RunEvent::CollectReport {
                worker,
                nodeid,
                report,
            } => self.collect_report(worker, nodeid, report),
            RunEvent::Warning(w) => {
                let new = self.warnings.is_empty();
                self.warnings.push((**w).clone());
                if new {
                    self.set_main_color();
                }
            }
            RunEvent::RunFinished(summary) => self.finish(summary),
            RunEvent::PluginSummary { text } => self.plugin_summary = text.to_string(),
            RunEvent::PluginSummaryFailed { error } => {
                self.plugin_summary = crash::summary_step_failed(error);
            }
            RunEvent::Coverage {
                error,
                report,
                required,
            } => {
                self.coverage = Some(CovOutcome {
                    error: error.clone(),
                    report: report.to_string(),
                    required: required.clone(),
                    failed: false,
                });
            }
            RunEvent::TestStarted { .. } | RunEvent::TestFinished { .. } | RunEvent::Tick => {}
            other => self.worker_event(other),
        }
    }

    /// The workers' own events: up, output, down, crashed, replaced, and xdist's lines.
    fn worker_event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::WorkersCreated { count } => {
                if self.verbosity() >= 0 && !self.quiet_before_start {
                    let noun = if *count == 1 { "worker" } else { "workers" };
                    self.status_line(
                        &format!("created: {count}/{count} {noun}"),
                        &["bold"],
                        false,
                    );
                } else {
                    self.status_line("bringing up nodes...", &[], false);
                }
            }
            RunEvent::WorkerOutput { worker, line, ends } => {
                self.worker_output(worker, line, *ends)
            }
            RunEvent::NodeDown { worker, error } if self.verbosity() >= 0 => {
                self.ensure_newline_partial();
                self.tw.line(&format!("[{worker}] node down: {error}"), &[]);
            }
            RunEvent::ReplacingWorker { worker } if self.verbosity() >= 0 => {
                self.write_line("", &[]);
                self.tw
                    .line(&format!("replacing crashed worker {worker}"), &[]);
            }
            RunEvent::TestCrashed(c) => {
                let short = (self.tw.fullwidth, self.tw.hasmarkup);
                let report = crash::test_report(c, Some(short));
                self.test_report(&c.crash.worker, &c.nodeid, &report);
            }
            RunEvent::WorkerCrashed { crash, moment } => self.worker_crashed(crash, moment),
            RunEvent::UnconfigureError { worker, traceback } => {
                eprint!("{}", crash::unconfigure_text(worker.as_deref(), traceback));
            }
            RunEvent::EmptyShard {
                index,
                total,
                collected,
            } => eprintln!(
                "{}",
                crate::report::text::empty_shard_line(*index, *total, *collected)
            ),
            RunEvent::Xdist(note) => self.xdist_line(crate::report::text::note_line(note)),
            RunEvent::ControllerOutput { text } => {
                self.ensure_newline_partial();
                for line in text.lines() {
                    self.tw.line(line, &[]);
                }
            }
            RunEvent::InternalError { text } => {
                for line in text.split('\n') {
                    self.write_line(&format!("INTERNALERROR> {line}"), &[]);
                }
            }
            _ => {}
        }
    }
}

impl TerminalReporter {
    fn session_start(
        &mut self,
        header: &[String],
        options: &ReportOptions,
        fallback: Option<&str>,
    ) {
        self.opts = options.clone();
        self.started = true;
        if self.verbosity() >= 0 {
            self.write_sep('=', Some("test session starts"), &["bold"]);
            if !self.opts.no_header {
                for line in header.iter() {
                    self.write_line(line, &[]);
                }
                if let Some(reason) = fallback {
                    self.write_line(&crate::report::text::spawn_fallback_line(reason), &[]);
                }
            }
        }
    }

    /// `2 workers [10 items]`, then the workers' collection lines.
    fn collection_complete(
        &mut self,
        workers: usize,
        items: usize,
        deselected: usize,
        lines: &[String],
        scheduler: &str,
    ) {
        self.collected = items;
        self.deselected = deselected;
        if self.verbosity() >= 0 {
            let wn = if workers == 1 { "worker" } else { "workers" };
            let inoun = if items == 1 { "item" } else { "items" };
            self.status_line(
                &format!("{workers} {wn} [{items} {inoun}]"),
                &["bold"],
                true,
            );
        } else {
            self.status_line("bringing up nodes...", &[], true);
        }
        for l in lines.iter() {
            self.write_line(l, &[]);
        }
        self.write_line("", &[]);
        if self.verbosity() > 0 {
            self.write_line(&format!("scheduling tests via {scheduler}"), &[]);
        }
    }

    /// `[gw0] line`; a piece of a long line continues the last one.
    fn worker_output(&mut self, worker: &str, line: &str, ends: bool) {
        if self.state == LineState::WorkerOutput(worker.to_string()) {
            // The rest of a long line.
            self.tw.write_raw(line);
        } else {
            self.ensure_newline();
            if self.tw.width_of_current_line() > 0 {
                // After progress letters: a line of its own.
                self.tw.line("", &[]);
            }
            self.tw.write_raw(&format!("[{worker}] {line}"));
        }
        if ends {
            self.tw.write_raw("\n");
            self.state = LineState::Clean;
        } else {
            self.state = LineState::WorkerOutput(worker.to_string());
        }
        self.tw.flush();
    }

    /// A crash no test is blamed for: the worker's last stderr lines, then a line of its
    /// own, kept for the summary.
    fn worker_crashed(&mut self, c: &WorkerCrash, moment: &CrashMoment) {
        for line in crash::session_tail(c) {
            self.worker_output(&c.worker, line, true);
        }
        self.xdist_line(crash::session_line(c, moment));
    }

    /// A line of xdist's own, also kept for the summary.
    fn xdist_line(&mut self, line: String) {
        if self.verbosity() >= 0 {
            self.write_line("", &[]);
            self.tw.line(&line, &[]);
        }
        self.xdist_messages.push(line);
    }

    /// pytest-xdist prints `node down` right after the letters on the same line.
    fn ensure_newline_partial(&mut self) {
        if matches!(
            self.state,
            LineState::Prefix(_) | LineState::Dirty | LineState::WorkerOutput(_)
        ) {
            self.tw.line("", &[]);
            self.state = LineState::Clean;
        }
    }
}
