//! `--junitxml PATH`: pytest's `LogXML` (`_pytest/junitxml.py`) ported to run events, so the
//! document is the one `pytest --junitxml` (and pytest-xdist's controller) writes: same
//! testcase names and classnames, failure/error/skipped elements and messages, properties,
//! captured output, honouring `junit_family`, `junit_suite_name`, `junit_logging`,
//! `junit_log_passing_tests`, `junit_duration_report` and `--junit-prefix` as the worker's
//! pytest resolved them.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::report::events::{Reporter, RunEvent, RunSummary};
use xdist_core::protocol::{Report, ReportOptions};

use crate::report::FileError;

/// pytest's `MESSAGE_ATTR_BUDGET`.
const MESSAGE_ATTR_BUDGET: usize = 500;

/// pytest's `bin_xml_escape`: characters XML cannot hold become a visible `#xAB`.
pub fn bin_xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let i = c as u32;
        let legal = matches!(i, 0x9 | 0xA | 0xD | 0x20..=0x7E | 0x80..=0xD7FF | 0xE000..=0xFFFD)
            || i >= 0x10000;
        if legal {
            out.push(c);
        } else if i <= 0xFF {
            out.push_str(&format!("#x{i:02X}"));
        } else {
            out.push_str(&format!("#x{i:04X}"));
        }
    }
    out
}

/// pytest's `shorten_message`.
pub fn shorten_message(msg: &str, budget: usize) -> String {
    let mut lines = xdist_core::pystr::splitlines(msg);
    if lines.is_empty() {
        lines.push("");
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut size = 0;
    for line in &lines {
        let n = line.chars().count();
        if !kept.is_empty() && size + n + 1 > budget {
            break;
        }
        kept.push(line);
        size += n + 1;
    }
    let mut shortened = kept.join("\n");
    let first_line_cut = shortened.chars().count() > budget;
    if first_line_cut {
        shortened = shortened.chars().take(budget).collect::<String>() + "...";
    }
    let remaining = lines.len() - kept.len();
    let note = if remaining > 0 {
        format!(
            "+{remaining} more line{}",
            if remaining > 1 { "s" } else { "" }
        )
    } else if first_line_cut {
        "truncated".to_string()
    } else {
        return msg.to_string();
    };
    format!("{shortened}\n[{note}; full report in element text]")
}

/// pytest's `mangle_test_address` (through `NodeId.parse`).
pub fn mangle_test_address(address: &str) -> Vec<String> {
    let (path, names, params) = match address.split_once("::") {
        None => (address, Vec::new(), None),
        Some((path, tail)) => {
            let (name_part, params) = match tail.split_once('[') {
                Some((n, p)) => (n, Some(p.strip_suffix(']').unwrap_or(p))),
                None => (tail, None),
            };
            (path, name_part.split("::").collect::<Vec<_>>(), params)
        }
    };
    let mut first = path.to_string();
    if let Some(stripped) = first.strip_suffix(".py") {
        first = stripped.to_string();
    }
    let mut out = vec![first.replace('/', ".")];
    out.extend(names.iter().map(|s| s.to_string()));
    if let Some(p) = params {
        if let Some(last) = out.last_mut() {
            last.push_str(&format!("[{p}]"));
        }
    }
    out
}

/// ElementTree's attribute escaping (Python 3.11 `_escape_attrib`).
fn escape_attr(s: &str) -> String {
    escape(s, true)
}

/// ElementTree's text escaping (`_escape_cdata`).
fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// `&`, `<`, `>` always; in attributes also `"` and the whitespace that would be normalised.
fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#09;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal ElementTree element: ordered attributes, text, children.
#[derive(Debug, Clone)]
struct Elem {
    tag: &'static str,
    attrs: Vec<(String, String)>,
    text: Option<String>,
    children: Vec<Elem>,
}

impl Elem {
    fn new(tag: &'static str) -> Self {
        Elem {
            tag,
            attrs: Vec::new(),
            text: None,
            children: Vec::new(),
        }
    }

    fn attr(mut self, k: &str, v: &str) -> Self {
        self.attrs.push((k.to_string(), v.to_string()));
        self
    }

    /// Serialized as `ET.tostring` does (no added whitespace, `<tag />` when empty).
    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.tag);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_attr(&bin_xml_escape(v)));
            out.push('"');
        }
        let text = self.text.as_deref().filter(|t| !t.is_empty());
        if text.is_none() && self.children.is_empty() {
            out.push_str(" />");
            return;
        }
        out.push('>');
        if let Some(t) = text {
            out.push_str(&escape_text(&bin_xml_escape(t)));
        }
        for c in &self.children {
            c.write(out);
        }
        out.push_str("</");
        out.push_str(self.tag);
        out.push('>');
    }
}

/// pytest's `_NodeReporter`.
#[derive(Debug, Default)]
struct NodeReporter {
    duration: f64,
    properties: Vec<(String, String)>,
    nodes: Vec<Elem>,
    attrs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Xunit1,
    Xunit2,
}

/// `(nodeid, worker)`: pytest's "local hack to handle xdist report order".
type Key = (String, String);

/// A failed `call` report whose teardown has not arrived yet.
#[derive(Debug, Clone)]
struct OpenReport {
    nodeid: String,
    worker: String,
    index: Option<usize>,
    props: Vec<(String, String)>,
}

/// `--junitxml`: collects the run and writes the file when it ends.
pub struct JunitReporter {
    /// Set from the worker's options at session start; inactive without `--junitxml`.
    logfile: Option<String>,
    prefix: Option<String>,
    suite_name: String,
    logging: String,
    log_passing_tests: bool,
    report_duration: String,
    family: Family,
    stats: HashMap<&'static str, usize>,
    node_reporters: HashMap<Key, usize>,
    ordered: Vec<NodeReporter>,
    open_reports: Vec<OpenReport>,
    cnt_double_fail_tests: usize,
    suite_start: SystemTime,
    /// Why the file could not be written (see [`JunitReporter::finish`]).
    error: Option<FileError>,
}

impl Default for JunitReporter {
    fn default() -> Self {
        Self::new()
    }
}

/// `report.capstdout` / `capstderr` (joined with "") and `caplog` (joined with "\n").
fn captured(report: &Report, prefix: &str) -> String {
    let parts: Vec<&str> = report
        .sections
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, content)| content.as_str())
        .collect();
    parts.join(if prefix == "Captured log" { "\n" } else { "" })
}

/// Python's `str.center(width, fill)`.
fn center(s: &str, width: usize, fill: char) -> String {
    let len = s.chars().count();
    if len >= width {
        return s.to_string();
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    let right = marg - left;
    let f = |n| std::iter::repeat_n(fill, n).collect::<String>();
    format!("{}{s}{}", f(left), f(right))
}

fn prepare_content(content: &str, header: &str) -> String {
    [center(header, 80, '-'), content.to_string(), String::new()].join("\n")
}

/// `str(report.longrepr)` as the worker sent it.
fn longrepr_str(report: &Report) -> String {
    if let Some(lr) = &report.lr {
        return lr.clone();
    }
    if let Some((path, lineno, reason)) = &report.lrt {
        let l = lineno.map_or("None".to_string(), |l| l.to_string());
        return format!("('{path}', {l}, '{reason}')");
    }
    report.text.clone().unwrap_or_default()
}

impl JunitReporter {
    pub fn new() -> Self {
        JunitReporter {
            logfile: None,
            prefix: None,
            suite_name: "pytest".into(),
            logging: "no".into(),
            log_passing_tests: true,
            report_duration: "total".into(),
            family: Family::Xunit2,
            stats: HashMap::new(),
            node_reporters: HashMap::new(),
            ordered: Vec::new(),
            open_reports: Vec::new(),
            cnt_double_fail_tests: 0,
            suite_start: SystemTime::now(),
            error: None,
        }
    }

    fn configure(&mut self, opts: &ReportOptions) {
        self.logfile = opts.xmlpath.clone();
        self.prefix = opts.junitprefix.clone().filter(|p| !p.is_empty());
        self.suite_name = opts.junit_suite_name.clone();
        self.logging = opts.junit_logging.clone();
        self.log_passing_tests = opts.junit_log_passing_tests;
        self.report_duration = opts.junit_duration_report.clone();
        self.family = match opts.junit_family.as_str() {
            "xunit1" | "legacy" => Family::Xunit1,
            _ => Family::Xunit2,
        };
        self.suite_start = SystemTime::now();
    }

    fn add_stats(&mut self, tag: &str) {
        let key = match tag {
            "error" => "error",
            "passed" => "passed",
            "failure" => "failure",
            "skipped" => "skipped",
            _ => return,
        };
        *self.stats.entry(key).or_default() += 1;
    }

    fn stat(&self, key: &str) -> usize {
        self.stats.get(key).copied().unwrap_or(0)
    }

    fn node_reporter(&mut self, nodeid: &str, worker: &str) -> usize {
        let key = (nodeid.to_string(), worker.to_string());
        if let Some(&i) = self.node_reporters.get(&key) {
            return i;
        }
        self.ordered.push(NodeReporter::default());
        let i = self.ordered.len() - 1;
        self.node_reporters.insert(key, i);
        i
    }

    fn append(&mut self, r: usize, node: Elem) {
        self.add_stats(node.tag);
        self.ordered[r].nodes.push(node);
    }

    fn add_simple(&mut self, r: usize, tag: &'static str, message: &str, data: &str) {
        let mut node = Elem::new(tag).attr("message", message);
        node.text = Some(data.to_string());
        self.append(r, node);
    }

    /// `_opentestcase`: `record_testreport` on the node's reporter.
    fn open_testcase(&mut self, nodeid: &str, worker: &str, report: &Report) -> usize {
        let r = self.node_reporter(nodeid, worker);
        let mut names = mangle_test_address(nodeid);
        let name = names.pop().unwrap_or_default();
        if let Some(p) = &self.prefix {
            names.insert(0, p.clone());
        }
        let (file, line) = match &report.location {
            Some((f, l, _)) => (f.clone(), *l),
            None => (nodeid.split("::").next().unwrap_or("").to_string(), None),
        };
        let mut attrs = vec![
            ("classname".to_string(), names.join(".")),
            ("name".to_string(), name),
        ];
        if self.family == Family::Xunit1 {
            attrs.push(("file".into(), file));
            if let Some(l) = line {
                attrs.push(("line".into(), l.to_string()));
            }
        }
        self.ordered[r].attrs = attrs;
        r
    }

    fn finalize(&mut self, nodeid: &str, worker: &str, props: &[(String, String)]) {
        let key = (nodeid.to_string(), worker.to_string());
        if let Some(r) = self.node_reporters.remove(&key) {
            for (k, v) in props {
                self.ordered[r].properties.push((k.clone(), v.clone()));
            }
        }
    }

    fn write_captured_output(&mut self, r: usize, report: &Report) {
        if !self.log_passing_tests && report.outcome == "passed" {
            return;
        }
        if self.logging == "no" {
            return;
        }
        let out = captured(report, "Captured stdout");
        let log = captured(report, "Captured log");
        let err = captured(report, "Captured stderr");
        let logging = self.logging.clone();
        let mut all = String::new();
        if matches!(logging.as_str(), "log" | "all") {
            all = prepare_content(&log, " Captured Log ");
        }
        if matches!(logging.as_str(), "system-out" | "out-err" | "all") {
            all += &prepare_content(&out, " Captured Out ");
            self.write_content(r, &all, "system-out");
            all.clear();
        }
        if matches!(logging.as_str(), "system-err" | "out-err" | "all") {
            all += &prepare_content(&err, " Captured Err ");
            self.write_content(r, &all, "system-err");
            all.clear();
        }
        if !all.is_empty() {
            self.write_content(r, &all, "system-out");
        }
    }

    fn write_content(&mut self, r: usize, content: &str, tag: &'static str) {
        let mut node = Elem::new(tag);
        node.text = Some(content.to_string());
        self.append(r, node);
    }

    fn append_failure(&mut self, r: usize, report: &Report) {
        if report.xfail.is_some() {
            // pytest passes no text here: ElementTree writes `str(None)`.
            self.add_simple(
                r,
                "skipped",
                "xfail-marked test passes unexpectedly",
                "None",
            );
        } else {
            let lr = longrepr_str(report);
            let message = report.crash.clone().unwrap_or_else(|| lr.clone());
            let message = shorten_message(&message, MESSAGE_ATTR_BUDGET);
            self.add_simple(r, "failure", &message, &lr);
        }
    }

    fn append_error(&mut self, r: usize, report: &Report) {
        let lr = longrepr_str(report);
        let reason = report.crash.clone().unwrap_or_else(|| lr.clone());
        let msg = if report.when == "teardown" {
            format!("failed on teardown with \"{reason}\"")
        } else {
            format!("failed on setup with \"{reason}\"")
        };
        self.add_simple(r, "error", &shorten_message(&msg, MESSAGE_ATTR_BUDGET), &lr);
    }

    fn append_skipped(&mut self, r: usize, report: &Report) {
        if let Some(reason) = &report.xfail {
            let reason = reason.strip_prefix("reason: ").unwrap_or(reason);
            let node = Elem::new("skipped")
                .attr("type", "pytest.xfail")
                .attr("message", reason);
            self.append(r, node);
        } else {
            let (filename, lineno, reason) = match &report.lrt {
                Some((f, l, reason)) => (
                    f.clone(),
                    l.map_or("None".to_string(), |l| l.to_string()),
                    reason.clone(),
                ),
                None => match &report.skip {
                    Some((f, l, reason)) => (
                        f.clone(),
                        l.map_or("None".to_string(), |l| l.to_string()),
                        reason.clone(),
                    ),
                    None => (String::new(), "None".into(), longrepr_str(report)),
                },
            };
            let reason = reason.strip_prefix("Skipped: ").unwrap_or(&reason);
            let mut node = Elem::new("skipped")
                .attr("type", "pytest.skip")
                .attr("message", reason);
            node.text = Some(format!("{filename}:{lineno}: {reason}"));
            self.append(r, node);
            self.write_captured_output(r, report);
        }
    }

    fn find_open(&self, nodeid: &str, worker: &str, index: Option<usize>) -> Option<usize> {
        self.open_reports
            .iter()
            .position(|o| o.nodeid == nodeid && o.worker == worker && o.index == index)
    }

    /// pytest's `LogXML.pytest_runtest_logreport`.
    fn test_report(&mut self, worker: &str, nodeid: &str, report: &Report) {
        let when = report.when.as_str();
        match report.outcome.as_str() {
            "passed" if when == "call" => {
                self.open_testcase(nodeid, worker, report);
                self.add_stats("passed");
            }
            "failed" => {
                if when == "teardown" {
                    match self.find_open(nodeid, worker, report.index) {
                        Some(i) => {
                            let open = self.open_reports[i].clone();
                            self.finalize(&open.nodeid, &open.worker, &open.props);
                        }
                        None => {
                            let key = (nodeid.to_string(), worker.to_string());
                            if self.node_reporters.contains_key(&key) {
                                self.cnt_double_fail_tests += 1;
                            }
                        }
                    }
                }
                let r = self.open_testcase(nodeid, worker, report);
                if when == "call" {
                    self.append_failure(r, report);
                    self.open_reports.push(OpenReport {
                        nodeid: nodeid.to_string(),
                        worker: worker.to_string(),
                        index: report.index,
                        props: report.props.clone(),
                    });
                    if !self.log_passing_tests {
                        self.write_captured_output(r, report);
                    }
                } else {
                    self.append_error(r, report);
                }
            }
            "skipped" => {
                let r = self.open_testcase(nodeid, worker, report);
                self.append_skipped(r, report);
            }
            _ => {}
        }
        if self.report_duration == "total" || self.report_duration == when {
            let r = self.node_reporter(nodeid, worker);
            self.ordered[r].duration += report.duration;
        }
        if when == "teardown" {
            let r = self.open_testcase(nodeid, worker, report);
            self.write_captured_output(r, report);
            self.finalize(nodeid, worker, &report.props);
            if let Some(i) = self.find_open(nodeid, worker, report.index) {
                self.open_reports.remove(i);
            }
        }
    }

    fn collect_report(&mut self, worker: &str, nodeid: &str, report: &Report) {
        if report.outcome == "passed" {
            return;
        }
        let r = self.open_testcase(nodeid, worker, report);
        let lr = longrepr_str(report);
        if report.outcome == "failed" {
            self.add_simple(r, "error", "collection failure", &lr);
        } else {
            self.add_simple(r, "skipped", "collection skipped", &lr);
        }
    }

    fn internal_error(&mut self, text: &str) {
        let r = self.node_reporter("internal", "");
        self.ordered[r].attrs = vec![
            ("classname".into(), "pytest".into()),
            ("name".into(), "internal".into()),
        ];
        self.add_simple(r, "error", "internal error", text);
    }

    /// The whole document, as `LogXML.pytest_sessionfinish` writes it.
    fn document(&self, summary: &RunSummary) -> String {
        let numtests = (self.stat("passed")
            + self.stat("failure")
            + self.stat("skipped")
            + self.stat("error"))
        .saturating_sub(self.cnt_double_fail_tests);
        let mut suite = Elem::new("testsuite")
            .attr("name", &self.suite_name)
            .attr("errors", &self.stat("error").to_string())
            .attr("failures", &self.stat("failure").to_string())
            .attr("skipped", &self.stat("skipped").to_string())
            .attr("tests", &numtests.to_string())
            .attr("time", &format!("{:.3}", summary.duration.as_secs_f64()))
            .attr("timestamp", &local_isoformat(self.suite_start))
            .attr("hostname", &hostname());
        for nr in &self.ordered {
            let mut tc = Elem::new("testcase");
            tc.attrs = nr.attrs.clone();
            tc.attrs
                .push(("time".into(), format!("{:.3}", nr.duration)));
            if !nr.properties.is_empty() {
                let mut props = Elem::new("properties");
                for (k, v) in &nr.properties {
                    props
                        .children
                        .push(Elem::new("property").attr("name", k).attr("value", v));
                }
                tc.children.push(props);
            }
            tc.children.extend(nr.nodes.iter().cloned());
            suite.children.push(tc);
        }
        let mut root = Elem::new("testsuites").attr("name", "pytest tests");
        root.children.push(suite);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        root.write(&mut out);
        out
    }

    /// The file's fate once the run ended: an unwritable one fails the run.
    pub fn finish(&mut self) -> Result<(), FileError> {
        self.error.take().map_or(Ok(()), Err)
    }

    fn write_file(&mut self, summary: &RunSummary) {
        let Some(path) = &self.logfile else {
            return;
        };
        let path = std::path::Path::new(path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(source) = std::fs::write(path, self.document(summary)) {
            self.error = Some(FileError::new("junit xml", path, source));
        }
    }
}

/// `datetime.astimezone().isoformat()` of `t`: local time with microseconds and offset.
fn local_isoformat(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as libc::time_t;
    // SAFETY: localtime_r fills a tm we own from a time_t we own.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    let off = tm.tm_gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{sign}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        d.subsec_micros(),
        off / 3600,
        (off % 3600) / 60
    )
}

/// `platform.node()`.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Reporter for JunitReporter {
    fn event(&mut self, event: &RunEvent) {
        if let RunEvent::SessionStart { options, .. } = event {
            self.configure(options);
            return;
        }
        if self.logfile.is_none() {
            return;
        }
        match event {
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
            RunEvent::TestCrashed(c) => {
                let report = crate::report::crash::test_report(c, None);
                self.test_report(&c.crash.worker, &c.nodeid, &report);
            }
            RunEvent::InternalError { text } => self.internal_error(text),
            RunEvent::RunFinished(summary) => self.write_file(summary),
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "junit_tests.rs"]
mod tests;
