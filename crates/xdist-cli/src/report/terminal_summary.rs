//! The terminal reporter's end of run: pytest's summary sections (errors, failures,
//! passes, warnings, durations, short test summary, coverage) and its stats line.

use super::*;

impl TerminalReporter {
    /// The `____ head ____` title of report `i` (a report without one is the session's).
    /// The reports of one outcome, under a `=== title ===` line when there are any.
    fn open_section(&mut self, which: &str, title: &str) -> Vec<usize> {
        let reports = self.stat_reports(which);
        if !reports.is_empty() {
            self.write_sep('=', Some(title), &[]);
        }
        reports
    }

    fn report_head(&self, i: usize) -> String {
        (self.reports[i].report.head.clone()).unwrap_or_else(|| "test session".into())
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
        let reports = self.open_section("error", "ERRORS");
        for i in reports {
            let rep = &self.reports[i].report;
            let head = self.report_head(i);
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
        let reports = self.open_section(which, title);
        for i in reports {
            if style == "line" {
                let line = crash_line(&self.reports[i].report);
                self.section_body(i);
                self.write_line(&line, &[]);
            } else {
                let head = self.report_head(i);
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
        let reports = self.open_section(which, title);
        for i in reports {
            if !self.reports[i].report.sections.is_empty() || self.reports[i].report.body.is_some()
            {
                let head = self.report_head(i);
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

    pub(super) fn finish(&mut self, summary: &RunSummary) {
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
            let tb = self.opts.tbstyle.clone();
            if !self.opts.failures_shown_live {
                self.summary_errors();
                self.summary_failures_combined("failed", "FAILURES", &tb);
            }
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
