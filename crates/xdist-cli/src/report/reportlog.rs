//! `--report-log PATH`: pytest-reportlog's JSON-lines file (`SessionStart`, `TestReport`,
//! `CollectReport`, `WarningMessage`, `SessionFinish`), so its consumers read ours. Workers
//! encode each report with pytest's own `pytest_report_to_serializable` and the line is
//! written verbatim; only reports the controller makes itself (a crashed worker's test, a
//! collection mismatch) are encoded here.
//!
//! The lines go to a hidden sibling file renamed into place when the run ends: pytest's
//! rootdir detection takes the value of `--report-log PATH` (a plugin option, unknown when
//! the rootdir is determined) for a test path when that file exists, so creating it while
//! workers start would give workers different rootdirs.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use crate::report::events::{Reporter, RunEvent};
use serde_json::{json, Value};
use xdist_core::protocol::Report;

use crate::report::FileError;

#[derive(Default)]
pub struct ReportLogReporter {
    path: Option<PathBuf>,
    tmp: Option<PathBuf>,
    file: Option<File>,
    /// Why the file could not be written (see [`ReportLogReporter::finish`]).
    error: Option<FileError>,
}

impl ReportLogReporter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The file's fate once the run ended: an unwritable one fails the run.
    pub fn finish(&mut self) -> Result<(), FileError> {
        self.error.take().map_or(Ok(()), Err)
    }

    /// Keeps the first error: the later ones follow from it.
    fn fail(&mut self, path: Option<PathBuf>, source: std::io::Error) {
        if self.error.is_none() {
            let path = path.or_else(|| self.path.clone()).unwrap_or_default();
            self.error = Some(FileError::new("report log", &path, source));
        }
    }

    fn open(&mut self, path: &str, cwd: &str) {
        let mut p = PathBuf::from(path);
        if p.is_relative() && !cwd.is_empty() {
            p = PathBuf::from(cwd).join(p);
        }
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let name = p
            .file_name()
            .map_or_else(|| "report-log".into(), |n| n.to_string_lossy().into_owned());
        remove_stale_temp_files(&p, &name);
        let tmp = p.with_file_name(format!("{}{}", temp_prefix(&name), std::process::id()));
        match File::create(&tmp) {
            Ok(f) => self.file = Some(f),
            Err(e) => self.fail(Some(p.clone()), e),
        }
        self.path = Some(p);
        self.tmp = Some(tmp);
    }

    /// One line, written (and so visible to `tail -f`) at once.
    fn line(&mut self, text: &str) {
        let Some(f) = self.file.as_mut() else {
            return;
        };
        let mut buf = String::with_capacity(text.len() + 1);
        buf.push_str(text);
        buf.push('\n');
        if let Err(e) = f.write_all(buf.as_bytes()) {
            self.file = None;
            self.fail(None, e);
        }
    }

    fn value(&mut self, v: Value) {
        let text = python_json(&v);
        self.line(&text);
    }
}

/// `.NAME.xdist-`: the hidden sibling's name, before the pid of the run writing it.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.xdist-")
}

/// Removes the hidden siblings left by runs that were killed (SIGKILL, a power cut) before
/// they could rename theirs: those whose process is gone.
fn remove_stale_temp_files(path: &std::path::Path, name: &str) {
    let prefix = temp_prefix(name);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only asks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `json.dumps(v)` spacing (`", "` and `": "`), ASCII-only like Python's default.
fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_py(v, &mut out);
    out
}

fn write_py(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(it, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, it)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_str(k, out);
                out.push_str(": ");
                write_py(it, out);
            }
            out.push('}');
        }
        Value::String(s) => write_py_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_py_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A report the controller made itself (no worker-side encoding), as pytest would encode it.
fn synthesize(nodeid: &str, report: &Report, collect: bool) -> Value {
    let longrepr = report
        .text
        .clone()
        .or_else(|| report.body.clone())
        .map_or(Value::Null, Value::String);
    if collect {
        return json!({
            "nodeid": nodeid,
            "outcome": report.outcome,
            "longrepr": longrepr,
            "result": Value::Null,
            "sections": [],
            "$report_type": "CollectReport",
        });
    }
    let location = match &report.location {
        Some((f, l, d)) => json!([f, l, d]),
        None => Value::Null,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    json!({
        "nodeid": nodeid,
        "location": location,
        "keywords": {},
        "outcome": report.outcome,
        "longrepr": longrepr,
        "when": report.when,
        "user_properties": [],
        "sections": [],
        "duration": report.duration,
        "start": now,
        "stop": now,
        "$report_type": "TestReport",
    })
}

impl Reporter for ReportLogReporter {
    fn event(&mut self, event: &RunEvent) {
        if let RunEvent::SessionStart { options, .. } = event {
            if let Some(path) = options.report_log.as_deref() {
                self.open(path, &options.startpath);
                let v = json!({
                    "pytest_version": options.pytest_version,
                    "$report_type": "SessionStart",
                });
                self.value(v);
            }
            return;
        }
        if self.file.is_none() {
            return;
        }
        match event {
            RunEvent::TestReport { nodeid, report, .. } => match &report.ser {
                Some(text) => self.line(text),
                None => self.value(synthesize(nodeid, report, false)),
            },
            RunEvent::CollectReport { nodeid, report, .. } => match &report.ser {
                Some(text) => self.line(text),
                None => self.value(synthesize(nodeid, report, true)),
            },
            RunEvent::TestCrashed(c) => {
                let report = crate::report::crash::test_report(c, None);
                self.value(synthesize(&c.nodeid, &report, false));
            }
            RunEvent::Warning(w) => {
                if let Some(text) = &w.reportlog {
                    self.line(text);
                }
            }
            RunEvent::RunFinished(summary) => {
                let v = json!({"exitstatus": summary.exit.code(), "$report_type": "SessionFinish"});
                self.value(v);
                self.file = None;
                if let (Some(tmp), Some(path)) = (self.tmp.take(), self.path.as_ref()) {
                    if let Err(e) = std::fs::rename(&tmp, path) {
                        let path = Some(path.clone());
                        self.fail(path, e);
                        let _ = std::fs::remove_file(&tmp);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_python_json_dumps() {
        let v = json!({"a": [1, "é\n\"x\""], "b": null, "c": 1.5});
        assert_eq!(
            python_json(&v),
            r#"{"a": [1, "\u00e9\n\"x\""], "b": null, "c": 1.5}"#
        );
        assert_eq!(python_json(&json!("𝄞")), r#""\ud834\udd1e""#);
    }
}
