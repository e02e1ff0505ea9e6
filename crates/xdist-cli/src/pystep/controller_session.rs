//! The controller session: a pytest process that plays pytest-xdist's controller for the
//! whole run, for the plugins and conftests that act there.
//!
//! pytest-xdist's controller is a pytest session: plugins' `pytest_configure_node` add to
//! each worker's `workerinput` (SQLAlchemy's test plugin names each worker's database that
//! way), conftests set things up once in `pytest_configure`/`pytest_sessionstart` when
//! `workerinput` is absent (and workers inherit the environment they set), and clean up in
//! `pytest_sessionfinish`. Ours is Rust, so when a worker names such hooks
//! (`controller_reasons` in `ready`), the run starts over with this session: it starts
//! first (`ControllerSession::start`: configure, `pytest_sessionstart`), is asked for each
//! worker's `workerinput` ([`ControllerSession::configure_node`]), and ends the run
//! ([`ControllerSession::finish`]: the reports, `pytest_testnodedown`,
//! `pytest_sessionfinish`, `pytest_terminal_summary`). The Python side is
//! `ControllerSession`/`serve_controller` in `xdist_steps.py`. Requests go on its stdin,
//! replies come on its result pipe (fd 3), one JSON line each; its stdout and stderr are the
//! terminal's, so what its plugins print passes through.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;

use serde_json::{json, Map, Value};
use xdist_worker::bootstrap::WORKER_CODE;

use crate::pystep::session_scheduler::{SessionLink, SharedLink};
use crate::pystep::step::{self, RESULT_FD};
use crate::pystep::summary::{step_command, SummaryInput};

/// What the session hears as the run goes, for its hooks (see [`ControllerSession::tell`]).
#[derive(Debug)]
pub enum SessionEvent {
    /// `pytest_testnodeready`: worker `id` is up.
    NodeReady {
        id: String,
        workerinfo: Map<String, Value>,
    },
    /// `pytest_xdist_node_collection_finished`: what worker `id` collected.
    CollectionFinished { id: String, ids: Vec<String> },
    /// A report as it arrives, `{"w": worker id, "r": serialized}` (`finish::summary_report`).
    Report(String),
    /// A warning as it arrives (`WarningRecord::summary` JSON text).
    Warning(String),
    /// `pytest_testnodedown`: worker `id` went down (`error`: why, None when it finished).
    /// `finish` names the finished ones again: the hook runs once.
    NodeDown {
        id: String,
        spec: String,
        workeroutput: Map<String, Value>,
        workerinfo: Map<String, Value>,
        error: Option<String>,
    },
}

pub struct ControllerSession {
    child: Child,
    /// Requests and replies (shared with the session's scheduler, `session_scheduler.rs`).
    link: SharedLink,
    /// Environment variables the session's plugins set: every worker gets them.
    pub env: Vec<(String, String)>,
}

impl ControllerSession {
    /// Starts the session and waits until its `pytest_sessionstart` hooks ran.
    pub fn start(
        python: &Path,
        cwd: &Path,
        args: &[String],
        numprocesses: usize,
        width: usize,
        color: bool,
    ) -> Result<Self, String> {
        let mut cmd = step_command(python, cwd, width);
        // Like the workers: a terminal Ctrl-C reaches the controller, which decides. (If
        // we die, its stdin closes and it ends.) What its plugins print goes to the
        // terminal, as pytest-xdist's controller shows it.
        cmd.process_group(0).stdout(Stdio::inherit());
        let (mut child, results) = step::spawn(cmd)?;
        let Some(mut stdin) = child.stdin.take() else {
            return Err("no pipe to the controller session".into());
        };
        let (lines, to_write) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in to_write {
                if stdin.write_all(line.as_bytes()).is_err() || stdin.flush().is_err() {
                    break;
                }
            }
        });
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(std::fs::File::from(results)).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => break,
                }
            }
        });
        let mut session = ControllerSession {
            child,
            link: SessionLink::shared(lines, replies),
            env: Vec::new(),
        };
        let request = json!({
            "code": WORKER_CODE,
            "result_fd": RESULT_FD,
            "serve": true,
            "args": args,
            "numprocesses": numprocesses,
            "width": width,
            "color": color,
        });
        let started = session.request(&request)?;
        if let Some(env) = started.get("env").and_then(Value::as_object) {
            session.env = (env.iter())
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
        }
        Ok(session)
    }

    /// `pytest_configure_node`: `workerinput` as the session's plugins leave it.
    pub fn configure_node(
        &mut self,
        workerid: &str,
        spec: &str,
        workerinput: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        let reply = self.request(&json!({
            "t": "configure_node",
            "id": workerid,
            "spec": spec,
            "workerinput": workerinput,
        }))?;
        match reply.get("workerinput") {
            Some(Value::Object(m)) => Ok(m.clone()),
            _ => Err("pytest_configure_node gave no workerinput".into()),
        }
    }

    /// Ends the run: returns what the `pytest_terminal_summary` hooks wrote, and the
    /// session's exit status as its `pytest_sessionfinish` hooks left it (syrupy fails a
    /// run with unused snapshots there).
    pub fn finish(mut self, input: &SummaryInput<'_>) -> Result<(String, Option<i64>), String> {
        let mut request = serde_json::to_value(input).map_err(|e| e.to_string())?;
        if let Value::Object(m) = &mut request {
            m.insert("t".into(), json!("finish"));
        }
        let reply = self.request(&request)?;
        let _ = self.child.wait();
        let text = (reply.get("text").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string();
        Ok((text, reply.get("exitstatus").and_then(Value::as_i64)))
    }

    /// `pytest_xdist_auto_num_workers` for `-n auto` or `-n logical` (`kind`): the first
    /// answer of the session's plugins, None when none gave one.
    pub fn auto_num_workers(&mut self, kind: &str) -> Result<Option<usize>, String> {
        let reply = self.request(&json!({"t": "auto_num_workers", "kind": kind}))?;
        match reply.get("count") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n as usize)),
                None => Err(format!(
                    "pytest_xdist_auto_num_workers returned {v}, not a count"
                )),
            },
        }
    }

    /// `pytest_xdist_setupnodes`, before any worker starts: waits for its hooks.
    pub fn setupnodes(&mut self, specs: &[String]) -> Result<(), String> {
        self.request(&json!({"t": "setupnodes", "specs": specs}))
            .map(drop)
    }

    /// What happened in the run, as it happens (one-way: the run does not wait).
    pub fn tell(&mut self, event: SessionEvent) {
        let line = match event {
            SessionEvent::NodeReady { id, workerinfo } => {
                json!({"t": "testnodeready", "id": id, "workerinfo": workerinfo}).to_string()
            }
            SessionEvent::CollectionFinished { id, ids } => {
                json!({"t": "collection_finished", "id": id, "ids": ids}).to_string()
            }
            // The entry is JSON already: spliced, not parsed again.
            SessionEvent::Report(entry) => match entry.strip_prefix('{') {
                Some(fields) => format!("{{\"t\":\"report\",{fields}"),
                None => return,
            },
            SessionEvent::Warning(summary) => {
                json!({"t": "warning", "warning": summary}).to_string()
            }
            SessionEvent::NodeDown {
                id,
                spec,
                workeroutput,
                workerinfo,
                error,
            } => json!({
                "t": "testnodedown", "id": id, "spec": spec, "workeroutput": workeroutput,
                "workerinfo": workerinfo, "error": error,
            })
            .to_string(),
        };
        self.send_line(line);
    }

    /// A one-way message: no reply. If the session is gone, the next request says so.
    fn send_line(&mut self, mut line: String) {
        line.push('\n');
        (self.link.lock().unwrap_or_else(|p| p.into_inner())).send(line);
    }

    pub(super) fn request(&mut self, request: &Value) -> Result<Value, String> {
        let reply = (self.link.lock().unwrap_or_else(|p| p.into_inner())).request(request);
        reply.ok_or_else(|| self.ended())
    }

    /// The request pipe, for the session's hooks that outlive a borrow (its scheduler).
    pub(super) fn link(&self) -> SharedLink {
        self.link.clone()
    }

    /// Why there is no reply: the session's process ended (its traceback is on stderr).
    fn ended(&mut self) -> String {
        match self.child.wait() {
            Ok(status) => format!("the controller session ended ({status}); see its output above"),
            Err(e) => format!("the controller session is gone: {e}"),
        }
    }
}

impl Drop for ControllerSession {
    fn drop(&mut self) {
        // Its stdin closes once the writer is done (also while its scheduler holds the
        // link): it ends.
        (self.link.lock().unwrap_or_else(|p| p.into_inner())).close();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
