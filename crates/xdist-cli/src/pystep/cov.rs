//! pytest-cov through xdist: what pytest-cov's `DistMaster` does on a pytest-xdist
//! controller, for a Rust controller.
//!
//! - [`add_workerinput`]: `pytest_configure_node`'s keys (`cov_master_host`,
//!   `cov_master_topdir`, `cov_master_rsync_roots`), so pytest-cov in each worker runs its
//!   `DistWorker`: it measures, saves its data file next to ours (collocated) or sends the
//!   data in `workeroutput` (elsewhere), and reports `cov_worker_node_id`.
//! - [`finish`]: once every worker is down, a short Python step in the run's interpreter
//!   drives pytest-cov's own `DistMaster` (`start`, `testnodedown` for every worker with its
//!   `workeroutput`, `finish`, `summary`) with the options pytest-cov parsed in a worker
//!   (sent as `xdist_cov_options`), so the data is combined and the report rendered by
//!   pytest-cov and coverage themselves: same totals, same files, every `--cov-report`, and
//!   `--cov-fail-under` / `--no-cov-on-fail` as pytest-cov applies them.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Map, Value};

/// What the terminal shows for coverage, and whether the run fails because of it.
#[derive(Clone)]
pub struct CovOutcome {
    /// Written right after the tests ran (`ERROR: Coverage failure: ...`), red.
    pub error: Option<String>,
    /// pytest-cov's report section (under `tests coverage`).
    pub report: String,
    /// `Required test coverage of N% reached/not reached...` and whether it failed.
    pub required: Option<(String, bool)>,
    /// `--cov-fail-under` not met: the run fails (pytest-cov adds a failed test).
    pub failed: bool,
}

/// pytest-cov's `DistMaster.configure_node`.
pub fn add_workerinput(workerinput: &mut Map<String, Value>, topdir: &Path) {
    workerinput.insert("cov_master_host".into(), json!(hostname()));
    workerinput.insert(
        "cov_master_topdir".into(),
        json!(topdir.display().to_string()),
    );
    workerinput.insert("cov_master_rsync_roots".into(), json!([]));
}

/// `socket.gethostname()`.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// One worker as `DistMaster.testnodedown` sees it.
pub struct CovNode<'a> {
    pub id: &'a str,
    pub workerinfo: &'a Map<String, Value>,
    /// Its `workeroutput`, None if it never finished (crashed).
    pub workeroutput: Option<&'a Map<String, Value>>,
}

/// Combines and reports coverage when pytest-cov ran in the workers (None otherwise).
pub fn finish(
    python: &Path,
    topdir: &Path,
    width: usize,
    nodes: &[CovNode<'_>],
    testsfailed: u64,
    run_time: std::time::Duration,
) -> Option<CovOutcome> {
    let active = nodes.iter().any(|n| {
        n.workeroutput
            .is_some_and(|o| o.contains_key("xdist_cov_options"))
    });
    if !active {
        return None;
    }
    let started = std::time::SystemTime::now()
        .checked_sub(run_time)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    let input = json!({
        "testsfailed": testsfailed,
        "result_fd": crate::pystep::step::RESULT_FD,
        "started": started,
        "nodes": nodes.iter().map(|n| json!({
            "id": n.id,
            "platform": n.workerinfo.get("sysplatform").cloned().unwrap_or(json!("unknown")),
            "version_info": n.workerinfo.get("version_info").cloned()
                .unwrap_or(json!([0, 0, 0, "unknown", 0])),
            "output": n.workeroutput,
        })).collect::<Vec<_>>(),
    });
    Some(
        run_step(python, topdir, width, &input).unwrap_or_else(|e| CovOutcome {
            error: Some(format!(
                "\nWARNING: Failed to generate report: xdist could not combine coverage: {e}\n\n"
            )),
            report: String::new(),
            required: None,
            failed: false,
        }),
    )
}

fn run_step(
    python: &Path,
    topdir: &Path,
    width: usize,
    input: &Value,
) -> Result<CovOutcome, String> {
    let mut cmd = Command::new(python);
    cmd.args(["-c", STEP])
        .current_dir(topdir)
        // pytest-cov sizes its separators from the terminal, like pytest's own width.
        .env(xdist_core::env::COLUMNS, width.to_string());
    let input = input.to_string().into_bytes();
    let result = crate::pystep::step::run(cmd, input, "no result")?;
    let v: Value = serde_json::from_slice(&result).map_err(|e| e.to_string())?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(CovOutcome {
        error: s("error"),
        report: s("report").unwrap_or_default(),
        required: v
            .get("required")
            .and_then(Value::as_array)
            .and_then(|a| Some((a.first()?.as_str()?.to_string(), a.get(1)?.as_bool()?))),
        failed: v.get("failed").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// pytest-cov's controller side (`CovPlugin.pytest_runtestloop` after the tests, and
/// `pytest_terminal_summary`), with its `DistMaster` and the workers' `workeroutput`.
const STEP: &str = r#"
import argparse, io, json, os, sys, types, warnings

data = json.load(sys.stdin)
nodes = data["nodes"]
opts = next(n["output"]["xdist_cov_options"] for n in nodes
            if n["output"] and "xdist_cov_options" in n["output"])
options = argparse.Namespace(**opts)
res = {"error": None, "report": "", "required": None, "failed": False}

from pytest_cov import engine
from coverage.misc import CoverageException
from coverage.results import display_covered, should_fail_under

class Config:
    option = options

warnings.simplefilter("ignore")
# DistMaster.start erases old data before the workers run; this runs after them, so it must
# not erase theirs: erase only files older than the run.
append = options.cov_append
options.cov_append = True
master = engine.DistMaster(options, Config(), None)
master.start()
options.cov_append = append
if not append:
    import glob, os
    base = os.path.abspath(master.cov.config.data_file)
    old = [base] + (glob.glob(glob.escape(base) + ".*") if master.cov.config.parallel else [])
    for path in old:
        try:
            if path == base or os.path.getmtime(path) < data["started"]:
                os.remove(path)
        except OSError:
            pass
for n in nodes:
    rinfo = types.SimpleNamespace(platform=n["platform"], version_info=tuple(n["version_info"]))
    gateway = types.SimpleNamespace(id=n["id"], _rinfo=lambda rinfo=rinfo: rinfo)
    master.testnodedown(types.SimpleNamespace(workeroutput=n["output"] or {}, gateway=gateway), None)
master.finish()

failed = data["testsfailed"] > 0
needed = options.cov_report or options.cov_fail_under
if needed and not (failed and getattr(options, "no_cov_on_fail", False)):
    stream = io.StringIO()
    try:
        total = master.summary(stream)
    except CoverageException as exc:
        res["error"] = "\nWARNING: Failed to generate report: {}\n\n".format(exc)
        total = 0
    precision = options.cov_precision
    fail_under = options.cov_fail_under
    if fail_under is not None and not getattr(options, "collectonly", False):
        if should_fail_under(total, fail_under, precision):
            message = "Coverage failure: total of {total} is less than fail-under={fail_under:.{p}f}".format(
                total=display_covered(total, precision), fail_under=fail_under, p=precision)
            res["error"] = (res["error"] or "") + "\nERROR: {}\n".format(message)
            res["failed"] = True
    res["report"] = stream.getvalue()
    if fail_under is not None and fail_under > 0:
        below = total < fail_under
        res["required"] = [
            "{fail}Required test coverage of {required}% {reached}. Total coverage: {actual:.2f}%\n".format(
                required=fail_under, actual=total, fail="FAIL " if below else "",
                reached="not reached" if below else "reached"),
            below,
        ]
# The result goes on a pipe of its own (see `step.rs`), apart from what was printed.
with os.fdopen(data["result_fd"], "w", encoding="utf-8") as result:
    json.dump(res, result)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workerinput_has_pytest_covs_keys() {
        let mut m = Map::new();
        add_workerinput(&mut m, Path::new("/some/dir"));
        assert_eq!(m["cov_master_topdir"], json!("/some/dir"));
        assert_eq!(m["cov_master_rsync_roots"], json!([]));
        assert!(!m["cov_master_host"].as_str().unwrap().is_empty());
    }

    #[test]
    fn inactive_without_pytest_cov_output() {
        let info = Map::new();
        let out = Map::new();
        let nodes = [CovNode {
            id: "gw0",
            workerinfo: &info,
            workeroutput: Some(&out),
        }];
        assert!(finish(
            Path::new("python3"),
            Path::new("."),
            80,
            &nodes,
            0,
            Default::default()
        )
        .is_none());
    }
}
