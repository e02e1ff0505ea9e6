//! The summary step: `pytest_terminal_summary` hooks of the user's plugins and conftests.
//!
//! pytest-xdist's controller is a pytest process, so every plugin's and initial conftest's
//! `pytest_terminal_summary` runs there over all the workers' reports: pytest-rerunfailures'
//! `rerun test summary info` (`-rR`), hypothesis's statistics and patches, a project's own
//! summary section. Ours is Rust, and renders pytest's own sections itself. When a worker
//! names other implementations (`summary_plugins` in `ready`), every report (and warning)
//! comes serialized, and after the tests:
//!
//! - normally the first worker to run out of work was told to `linger` instead of shutting
//!   down; once it is the last one left the controller sends it `summarize` with the whole
//!   run's reports, and it runs those hooks in its own session (no process to start);
//! - when no worker is left for it (`-x`, Ctrl-C, a crash, too much to send), [`run`]
//!   starts the worker code once more in summary mode (`summarize` in `xdist_steps.py`):
//!   a pytest process configured like pytest-xdist's controller (the user's arguments,
//!   plugins and initial conftests, no `workerinput`).
//!
//! Plugins that act only on pytest-xdist's controller (`controller_plugins` in `ready`:
//! pytest-html's `--html`, pytest-json-report's `--json-report`) never exist in a worker.
//! For them the process always runs, in `mirror` mode: it replays the run through a session
//! of its own (`pytest_sessionstart`, each report's `pytest_runtest_logreport`, each
//! warning's `pytest_warning_recorded`, `pytest_sessionfinish`) for every plugin pytest does
//! not own, as pytest-xdist's controller calls them, and their files are written.
//!
//! Runs without such plugins never pay for any of this.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;
use xdist_worker::bootstrap::WORKER_CODE;

/// Everything the summary step needs, sent as JSON on its stdin.
#[derive(Serialize)]
pub struct SummaryInput<'a> {
    /// pytest's arguments, as the workers got them.
    pub args: &'a [String],
    /// Replay the run for controller-only plugins first (`controller_plugins`).
    pub mirror: bool,
    /// Run the `pytest_terminal_summary` hooks (not with `--no-summary`).
    pub summary: bool,
    /// The `-n` value pytest-xdist's controller would have parsed.
    pub numprocesses: usize,
    /// `{"w": worker id, "r": pytest_report_to_serializable JSON}` of each report, in
    /// arrival order.
    pub reports: &'a [String],
    /// Each worker's `workerinfo` by id.
    pub workerinfo: serde_json::Map<String, serde_json::Value>,
    /// Each warning's `WarningRecord::summary` (JSON text).
    pub warnings: &'a [String],
    pub exitstatus: i32,
    /// Tests collected (`session.testscollected` on pytest-xdist's controller).
    pub collected: usize,
    /// When the run started (seconds since the epoch): controller-only plugins time it.
    pub started: f64,
    /// Each worker that finished, for `pytest_testnodedown`: `{"id", "spec", "workeroutput",
    /// "workerinfo", "error"}`.
    pub nodes: Vec<serde_json::Value>,
    pub width: usize,
    pub color: bool,
}

#[derive(Serialize)]
struct Payload<'a> {
    code: &'a str,
    /// The descriptor the step writes its result to (see `step.rs`).
    result_fd: i32,
    #[serde(flatten)]
    input: &'a SummaryInput<'a>,
}

/// Reads the payload (the first line of stdin) and runs the worker code with
/// `SUMMARY_INPUT` set.
const BOOTSTRAP: &str = r#"import json,sys
d=json.loads(sys.stdin.readline())
exec(compile(d.pop("code"),"<xdist-worker>","exec"),{"__name__":"__xdist_worker__","SUMMARY_INPUT":d})
"#;

/// `python -c BOOTSTRAP` in `cwd`, stdin and stdout piped: the worker code in summary or
/// controller-session mode (the first line of stdin says which), its result or replies on
/// `step::RESULT_FD`.
pub(crate) fn step_command(python: &Path, cwd: &Path, width: usize) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-c", BOOTSTRAP])
        .current_dir(cwd)
        // Plugins size their separators from the terminal, like pytest's own width.
        .env(xdist_core::env::COLUMNS, width.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    cmd
}

/// Runs the step in `python` from `cwd`; the text the hooks wrote, or why it failed (one
/// line, the last of the step's stderr).
pub fn run(python: &Path, cwd: &Path, input: &SummaryInput<'_>) -> Result<String, String> {
    let mut payload = serde_json::to_vec(&Payload {
        code: WORKER_CODE,
        result_fd: crate::pystep::step::RESULT_FD,
        input,
    })
    .map_err(|e| e.to_string())?;
    payload.push(b'\n');
    let cmd = step_command(python, cwd, input.width);
    let result = crate::pystep::step::run(cmd, payload, "it wrote no result")?;
    serde_json::from_slice::<String>(&result).map_err(|e| e.to_string())
}
