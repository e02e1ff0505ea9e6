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

use std::io::{PipeReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

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

/// The step's result pipe: its replies (one JSON value a line), apart from what its plugins
/// print, which goes to the terminal. The payload names it (`result_fd`).
pub(crate) const RESULT_FD: i32 = 3;

/// A running step: the worker code in summary or controller-session mode (the first line of
/// stdin says which), stdin piped, its replies on [`RESULT_FD`].
pub(crate) struct StepProcess {
    pub child: Child,
    pub results: PipeReader,
}

/// Starts `python -c BOOTSTRAP` in `cwd`; `configure` sets what differs (stdio, group).
pub(crate) fn spawn_step(
    python: &Path,
    cwd: &Path,
    width: usize,
    configure: impl FnOnce(&mut Command),
) -> Result<StepProcess, String> {
    let (results, writer) = std::io::pipe().map_err(|e| format!("no result pipe: {e}"))?;
    let writer: OwnedFd = writer.into();
    let fd = writer.as_raw_fd();
    let mut cmd = Command::new(python);
    cmd.args(["-c", BOOTSTRAP])
        .current_dir(cwd)
        // Plugins size their separators from the terminal, like pytest's own width.
        .env(xdist_core::env::COLUMNS, width.to_string())
        .stdin(Stdio::piped());
    configure(&mut cmd);
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // std's pipe is above fd 2 and opened before ours, so never RESULT_FD itself
            // unless 3 was free: then dup2 is a no-op that keeps CLOEXEC, cleared below.
            if libc::dup2(fd, RESULT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::fcntl(RESULT_FD, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let child = (cmd.spawn()).map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    drop(writer); // ours: the pipe ends when the step does
    Ok(StepProcess { child, results })
}

/// Runs the step in `python` from `cwd`; the text the hooks wrote, or why it failed (one
/// line, the last of the step's stderr).
pub fn run(python: &Path, cwd: &Path, input: &SummaryInput<'_>) -> Result<String, String> {
    let mut payload = serde_json::to_vec(&Payload {
        code: WORKER_CODE,
        result_fd: RESULT_FD,
        input,
    })
    .map_err(|e| e.to_string())?;
    payload.push(b'\n');
    let StepProcess {
        mut child,
        mut results,
    } = spawn_step(python, cwd, input.width, |cmd| {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    })?;
    // A writer thread: the step may print (plugins configuring) before it reads all input.
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&payload);
        }
    });
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = results.read_to_string(&mut text);
        text
    });
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let result = reader.join().unwrap_or_default();
    match result.lines().find(|l| !l.is_empty()) {
        Some(json) => serde_json::from_str::<String>(json).map_err(|e| e.to_string()),
        None => {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(err
                .trim_end()
                .lines()
                .last()
                .unwrap_or("it printed no result")
                .to_string())
        }
    }
}
