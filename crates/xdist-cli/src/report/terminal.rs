//! The terminal reporter: pytest's `TerminalReporter` as pytest-xdist drives it, fed by run
//! events. Everything that needs pytest objects (status words, tracebacks, short-summary
//! lines) was rendered by the worker; this module only arranges it as pytest would.

use std::collections::{HashMap, HashSet};

use xdist_core::events::{CrashMoment, Reporter, RunEvent, RunSummary, WorkerCrash};
use xdist_core::protocol::{Report, ReportOptions, WarningRecord};

use crate::pystep::cov::CovOutcome;
use crate::report::crash;
use crate::report::status::StatusHandle;
use crate::report::termwriter::TermWriter;

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

    fn section_body(&mut self, i: usize) {
        if let Some(body) = self.reports[i].report.body.clone() {
            self.tw.write_raw(&body);
        }
    }

    fn handle_teardown_sections(&mut self, nodeid: &str) {
        if let Some(texts) = self.teardown_sections.get(nodeid).cloned() {
            for t in texts {
                self.tw.write_raw(&t);
            }
        }
    }

    fn summary_errors(&mut self) {
        if self.opts.tbstyle == "no" {
            return;
        }
        let reports = self.stat_reports("error");
        if reports.is_empty() {
            return;
        }
        self.write_sep('=', Some("ERRORS"), &[]);
        for i in reports {
            let rep = &self.reports[i].report;
            let head = rep.head.clone().unwrap_or_else(|| "test session".into());
            let msg = if rep.when == "collect" {
                format!("ERROR collecting {head}")
            } else {
                format!("ERROR at {} of {head}", rep.when)
            };
            self.write_sep('_', Some(&msg), &["red", "bold"]);
            self.section_body(i);
        }
    }

    fn summary_failures_combined(&mut self, which: &str, title: &str, style: &str) {
        if style == "no" {
            return;
        }
        let reports = self.stat_reports(which);
        if reports.is_empty() {
            return;
        }
        self.write_sep('=', Some(title), &[]);
        for i in reports {
            if style == "line" {
                let line = crash_line(&self.reports[i].report);
                self.section_body(i);
                self.write_line(&line, &[]);
            } else {
                let head = self.reports[i]
                    .report
                    .head
                    .clone()
                    .unwrap_or_else(|| "test session".into());
                self.write_sep('_', Some(&head), &["red", "bold"]);
                self.section_body(i);
                let nodeid = self.reports[i].nodeid.clone();
                self.handle_teardown_sections(&nodeid);
            }
        }
    }

    fn summary_passes_combined(&mut self, which: &str, title: &str, opt: char) {
        if self.opts.tbstyle == "no" || !self.hasopt(opt) {
            return;
        }
        let reports = self.stat_reports(which);
        if reports.is_empty() {
            return;
        }
        self.write_sep('=', Some(title), &[]);
        for i in reports {
            if !self.reports[i].report.sections.is_empty() || self.reports[i].report.body.is_some()
            {
                let head = self.reports[i]
                    .report
                    .head
                    .clone()
                    .unwrap_or_else(|| "test session".into());
                self.write_sep('_', Some(&head), &["green", "bold"]);
                self.section_body(i);
            }
            let nodeid = self.reports[i].nodeid.clone();
            self.handle_teardown_sections(&nodeid);
        }
    }

    fn summary_warnings(&mut self, final_: bool, already: &mut Option<usize>) {
        if !self.hasopt('w') || self.warnings.is_empty() {
            return;
        }
        let start = if final_ { already.unwrap_or(0) } else { 0 };
        let list: Vec<WarningRecord> = self.warnings[start..].to_vec();
        *already = Some(self.warnings.len());
        if list.is_empty() {
            return;
        }
        // Group by message, in first-seen order.
        let mut groups: Vec<(String, Vec<&WarningRecord>)> = Vec::new();
        for w in &list {
            match groups.iter_mut().find(|(m, _)| *m == w.message) {
                Some((_, v)) => v.push(w),
                None => groups.push((w.message.clone(), vec![w])),
            }
        }
        let title = if final_ {
            "warnings summary (final)"
        } else {
            "warnings summary"
        };
        self.write_sep('=', Some(title), &["yellow"]);
        for (message, reports) in groups {
            let locations: Vec<String> =
                reports.iter().filter_map(|w| w.location.clone()).collect();
            let maybe_location = if locations.len() < 10 {
                locations.join("\n")
            } else {
                let mut counts: Vec<(String, usize)> = Vec::new();
                for loc in &locations {
                    let file = loc.split("::").next().unwrap_or("").to_string();
                    match counts.iter_mut().find(|(f, _)| *f == file) {
                        Some((_, c)) => *c += 1,
                        None => counts.push((file, 1)),
                    }
                }
                counts
                    .iter()
                    .map(|(f, c)| format!("{f}: {c} warning{}", if *c > 1 { "s" } else { "" }))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let msg = if !maybe_location.is_empty() {
                self.tw.line(&maybe_location, &[]);
                let indented: Vec<String> = message.lines().map(|l| format!("  {l}")).collect();
                indented.join("\n").trim_end().to_string()
            } else {
                message.trim_end().to_string()
            };
            self.tw.line(&msg, &[]);
            self.tw.line("", &[]);
        }
        self.tw.line(
            "-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html",
            &[],
        );
    }

    /// The lines junitxml's and pytest-reportlog's `pytest_terminal_summary` print.
    fn summary_file_reports(&mut self) {
        if let Some(path) = self.opts.xmlpath.clone() {
            if self.verbosity() >= 0 {
                self.write_sep('-', Some(&format!("generated xml file: {path}")), &[]);
            }
        }
        if let Some(path) = self.opts.report_log.clone() {
            let path = path.strip_prefix("./").unwrap_or(&path).to_string();
            self.write_sep(
                '-',
                Some(&format!("generated report log file: {path}")),
                &[],
            );
        }
    }

    /// `--durations N` / `--durations-min S` (`_pytest/runner.py`'s terminal summary).
    fn summary_durations(&mut self) {
        let Some(durations) = self.opts.durations else {
            return;
        };
        let min = self
            .opts
            .durations_min
            .unwrap_or(if self.verbosity() < 2 { 0.005 } else { 0.0 });
        let mut dlist: Vec<usize> = self
            .stats
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|&i| self.reports[i].report.when != "collect")
            .collect();
        if dlist.is_empty() {
            return;
        }
        dlist.sort_by(|&a, &b| {
            self.reports[b]
                .report
                .duration
                .total_cmp(&self.reports[a].report.duration)
        });
        if durations == 0 {
            self.write_sep('=', Some("slowest durations"), &[]);
        } else {
            self.write_sep('=', Some(&format!("slowest {durations} durations")), &[]);
            dlist.truncate(durations as usize);
        }
        for (n, &i) in dlist.iter().enumerate() {
            let rep = &self.reports[i];
            if rep.report.duration < min {
                let mut msg = format!(
                    "({} durations < {}s hidden.",
                    dlist.len() - n,
                    crate::report::text::format_g(min)
                );
                if self.opts.durations_min.is_none() {
                    msg.push_str("  Use -vv to show these durations.");
                }
                msg.push(')');
                self.write_line("", &[]);
                self.write_line(&msg, &[]);
                break;
            }
            let line = format!(
                "{:02.2}s {:<8} {}",
                rep.report.duration, rep.report.when, rep.nodeid
            );
            self.write_line(&line, &[]);
        }
    }

    fn short_test_summary(&mut self) {
        if self.opts.reportchars.is_empty() {
            return;
        }
        let mut lines: Vec<String> = Vec::new();
        let chars: Vec<char> = self.opts.reportchars.chars().collect();
        for c in chars {
            match c {
                'f' => self.simple_lines("failed", &mut lines),
                'E' => self.simple_lines("error", &mut lines),
                'p' => self.simple_lines("passed", &mut lines),
                'x' => self.simple_lines("xfailed", &mut lines),
                'X' => self.simple_lines("xpassed", &mut lines),
                's' => self.skipped_lines(&mut lines),
                _ => {}
            }
        }
        if !lines.is_empty() {
            self.write_sep('=', Some("short test summary info"), &["cyan", "bold"]);
            for l in lines {
                self.write_line(&l, &[]);
            }
        }
    }

    fn simple_lines(&self, stat: &str, lines: &mut Vec<String>) {
        for i in self.stat_reports(stat) {
            let s = &self.reports[i];
            match &s.report.short {
                Some(l) => lines.push(l.clone()),
                None => {
                    let word = stat.to_uppercase();
                    let word = self.tw.markup(&word, &[color_for_type(stat)]);
                    lines.push(format!("{word} {}", s.nodeid));
                }
            }
        }
    }

    fn skipped_lines(&self, lines: &mut Vec<String>) {
        let skipped = self.stat_reports("skipped");
        if skipped.is_empty() {
            return;
        }
        if self.opts.foldskipped {
            let mut folded: Vec<(SkipKey, usize)> = Vec::new();
            let mut word = None;
            for &i in &skipped {
                let rep = &self.reports[i].report;
                let Some(key) = rep.skip.clone() else {
                    continue;
                };
                if word.is_none() {
                    word = rep.short.clone();
                }
                match folded.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => folded.push((key, 1)),
                }
            }
            let word = word.unwrap_or_else(|| self.tw.markup("SKIPPED", &["yellow"]));
            for ((fspath, lineno, reason), n) in folded {
                let reason = reason.strip_prefix("Skipped: ").unwrap_or(&reason);
                match lineno {
                    Some(l) => lines.push(format!("{word} [{n}] {fspath}:{l}: {reason}")),
                    None => lines.push(format!("{word} [{n}] {fspath}: {reason}")),
                }
            }
        } else {
            for &i in &skipped {
                let s = &self.reports[i];
                let word = s
                    .report
                    .short
                    .clone()
                    .unwrap_or_else(|| self.tw.markup("SKIPPED", &["yellow"]));
                let mut line = format!("{word} {}", s.nodeid);
                if let Some((_, _, reason)) = &s.report.skip {
                    if !reason.is_empty() {
                        line.push_str(&format!(" - {reason}"));
                    }
                }
                lines.push(line);
            }
        }
    }

    fn summary_stats(&mut self, summary: &RunSummary) {
        if self.verbosity() < -1 {
            return;
        }
        self.set_main_color();
        let main_color = self.main_color;
        let mut known: Vec<String> = KNOWN_TYPES.iter().map(|s| s.to_string()).collect();
        known.extend(self.unknown_types());
        let mut parts: Vec<(String, Vec<&str>)> = Vec::new();
        for key in &known {
            let count = match key.as_str() {
                "warnings" => self.warnings.len(),
                "deselected" => self.deselected,
                k => self.stat_len(k),
            };
            if count > 0 {
                let color = color_for_type(key);
                let mut markup = vec![color];
                if color == main_color {
                    markup.push("bold");
                }
                parts.push((format!("{count} {}", pluralize(count, key)), markup));
            }
        }
        if parts.is_empty() {
            parts.push(("no tests ran".into(), vec!["yellow"]));
        }
        let display_sep = self.verbosity() >= 0;
        let mut fullwidth = self.tw.fullwidth;
        let mut line_parts = Vec::new();
        for (text, markup) in &parts {
            let with = self.tw.markup(text, markup);
            fullwidth += with.len() - text.len();
            line_parts.push(with);
        }
        let mut msg = line_parts.join(", ");
        let duration = format!(
            " in {}",
            format_session_duration(summary.duration.as_secs_f64())
        );
        let dm = self.tw.markup(&duration, &[main_color]);
        fullwidth += dm.len() - duration.len();
        msg.push_str(&dm);
        if display_sep {
            let end = self.tw.markup("", &[main_color]);
            let end = end.strip_suffix("\x1b[0m").unwrap_or(&end).to_string();
            fullwidth += end.len();
            msg.push_str(&end);
            self.ensure_newline();
            self.tw.sep('=', Some(&msg), &[main_color], Some(fullwidth));
        } else {
            self.write_line(&msg, &[main_color]);
        }
    }

    fn finish(&mut self, summary: &RunSummary) {
        if let Some(error) = self.coverage.as_ref().and_then(|c| c.error.clone()) {
            // pytest-cov writes it at the end of the test loop, before the progress fill.
            self.ensure_newline();
            self.tw.write(&error, &["red", "bold"]);
        }
        if self.started
            && self.verbosity() <= 0
            && self.show_progress()
            && !self.progress_reported.is_empty()
        {
            self.write_progress_filling_space();
        }
        self.tw.line("", &[]);
        self.state = LineState::Clean;
        let mut already = None;
        if !self.opts.no_summary {
            self.summary_errors();
            let tb = self.opts.tbstyle.clone();
            self.summary_failures_combined("failed", "FAILURES", &tb);
            let xtb = if self.opts.xfail_tb {
                tb.clone()
            } else {
                "no".into()
            };
            self.summary_failures_combined("xfailed", "XFAILURES", &xtb);
            self.summary_warnings(false, &mut already);
            self.summary_passes_combined("passed", "PASSES", 'P');
            self.summary_passes_combined("xpassed", "XPASSES", 'X');
            if self.verbosity() >= 0 {
                for m in self.xdist_messages.clone() {
                    self.write_sep('=', Some(&format!("xdist: {m}")), &[]);
                }
            }
            self.summary_file_reports();
            self.summary_coverage();
            if !self.plugin_summary.is_empty() {
                self.tw.write_raw(&std::mem::take(&mut self.plugin_summary));
            }
            self.summary_durations();
            self.short_test_summary();
            self.summary_warnings(true, &mut already);
        }
        if let Some(sf) = &summary.shouldfail {
            self.write_sep('!', Some(sf), &["red"]);
        }
        if let Some(msg) = &summary.interrupted {
            self.write_sep('!', Some(msg), &[]);
        }
        self.summary_stats(summary);
        self.tw.flush();
    }
}

impl TerminalReporter {
    /// pytest-cov's `pytest_terminal_summary`.
    fn summary_coverage(&mut self) {
        let Some(CovOutcome {
            report, required, ..
        }) = self.coverage.clone()
        else {
            return;
        };
        if !report.is_empty() {
            self.write_sep('=', Some("tests coverage"), &[]);
            self.tw.write_raw(&report);
        }
        if let Some((message, failed)) = required {
            if report.is_empty() {
                self.write_sep('=', Some("tests coverage"), &[]);
            }
            let markup: &[&str] = if failed { &["red", "bold"] } else { &["green"] };
            self.tw.write(&message, markup);
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

/// pytest's `_getcrashline`: the worker's rendering, else the first 50 characters.
fn crash_line(rep: &Report) -> String {
    if let Some(line) = &rep.crashline {
        return line.clone();
    }
    rep.text
        .as_deref()
        .map(|t| t.chars().take(50).collect())
        .unwrap_or_default()
}

/// pytest's `pluralize`.
fn pluralize(count: usize, noun: &str) -> String {
    match noun {
        "error" | "warnings" | "test" => {
            let noun = if noun == "warnings" { "warning" } else { noun };
            if count != 1 {
                format!("{noun}s")
            } else {
                noun.to_string()
            }
        }
        _ => noun.to_string(),
    }
}

/// pytest's `format_session_duration`.
pub fn format_session_duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.2}s")
    } else {
        let total = seconds as u64;
        format!(
            "{seconds:.2}s ({}:{:02}:{:02})",
            total / 3600,
            (total % 3600) / 60,
            total % 60
        )
    }
}

impl Reporter for TerminalReporter {
    fn wants_ticks(&self) -> bool {
        self.status.as_ref().is_some_and(StatusHandle::active)
    }

    fn event(&mut self, event: &RunEvent<'_>) {
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
    fn terminal_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::SessionStart { header, options } => self.session_start(header, options),
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
                self.warnings.push((*w).clone());
                if new {
                    self.set_main_color();
                }
            }
            RunEvent::RunFinished(summary) => self.finish(summary),
            RunEvent::PluginSummary { text } => self.plugin_summary = text.to_string(),
            RunEvent::Coverage {
                error,
                report,
                required,
            } => {
                self.coverage = Some(CovOutcome {
                    error: error.map(str::to_string),
                    report: report.to_string(),
                    required: required.map(|(m, f)| (m.to_string(), f)),
                    failed: false,
                });
            }
            RunEvent::TestStarted { .. } | RunEvent::TestFinished { .. } | RunEvent::Tick => {}
            other => self.worker_event(other),
        }
    }

    /// The workers' own events: up, output, down, crashed, replaced, and xdist's lines.
    fn worker_event(&mut self, event: &RunEvent<'_>) {
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
                self.test_report(c.crash.worker, c.nodeid, &report);
            }
            RunEvent::WorkerCrashed { crash, moment } => self.worker_crashed(crash, *moment),
            RunEvent::UnconfigureError { worker, traceback } => {
                eprint!("{}", crash::unconfigure_text(*worker, traceback));
            }
            RunEvent::EmptyShard {
                index,
                total,
                collected,
            } => eprintln!(
                "{}",
                crate::report::text::empty_shard_line(*index, *total, *collected)
            ),
            RunEvent::XdistMessage { message } => {
                if self.verbosity() >= 0 {
                    self.write_line("", &[]);
                    self.tw.line(message, &[]);
                }
                self.xdist_messages.push(message.to_string());
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
    fn session_start(&mut self, header: &[String], options: &ReportOptions) {
        self.opts = options.clone();
        self.started = true;
        if self.verbosity() >= 0 {
            self.write_sep('=', Some("test session starts"), &["bold"]);
            if !self.opts.no_header {
                for line in header.iter() {
                    self.write_line(line, &[]);
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
    fn worker_crashed(&mut self, c: &WorkerCrash<'_>, moment: CrashMoment<'_>) {
        for line in crash::session_tail(c) {
            self.worker_output(c.worker, line, true);
        }
        let message = crash::session_line(c, moment);
        self.terminal_event(&RunEvent::XdistMessage { message: &message });
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
