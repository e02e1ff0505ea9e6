//! `-n 0`, `--collect-only`, `--help` and pytest's informational options (`--markers`,
//! `--fixtures`, `--fixtures-per-test`): plain pytest in the user's interpreter.
//!
//! With `--shard`, pytest keeps only the shard: a last `pytest_collection_modifyitems`
//! sends the collected ids over a pipe, xdist answers with the indices `shard::select`
//! keeps (the same split a distributed run makes), and the rest are deselected.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

use xdist_core::env as envnames;

use crate::cli::args::{Shard, ShardBy};
use crate::error::CliError;

/// Runs pytest as `python -m pytest` would, plus pytest-xdist's options, marker and fixtures
/// (so `-n` in `addopts` still parses) only where pytest-xdist itself is not loaded: not
/// installed, autoload disabled, or `-p no:xdist`. Nothing of pytest-xdist is imported here
/// (pytest must import it itself to rewrite its asserts, or it warns); replaces this process.
const RUNNER: &str = r#"import sys, importlib.util, types
if sys.path and sys.path[0] == "":
    del sys.path[0]
import pytest

# Module-level fixtures: pytest deprecates session fixtures defined as instance methods.
STANDIN = """
import uuid, pytest
def pytest_addoption(parser):
    g = parser.getgroup("xdist", "distributed and subprocess testing")
    g._addoption("-n", "--numprocesses", dest="numprocesses", action="store")
    g.addoption("--maxprocesses", action="store")
    g.addoption("--max-worker-restart", dest="maxworkerrestart", action="store")
    g.addoption("--dist", action="store", default="no")
    g.addoption("--loadscope-reorder", dest="loadscopereorder", action="store_true", default=True)
    g.addoption("--no-loadscope-reorder", dest="loadscopereorder", action="store_false")
    g.addoption("--tx", action="append", default=[])
    g.addoption("--px", action="append", default=[])
    g._addoption("-d", action="store_true", dest="distload", default=False)
    g.addoption("--rsyncdir", action="append", default=[])
    g.addoption("--rsyncignore", action="append", default=[])
    g.addoption("--testrunuid", action="store")
    g.addoption("--maxschedchunk", action="store")
    g._addoption("-f", "--looponfail", action="store_true", default=False)
    parser.addini("rsyncdirs", "rsync roots (xdist)", type="paths")
    parser.addini("rsyncignore", "rsync ignores (xdist)", type="paths")
    parser.addini("looponfailroots", "looponfail roots (xdist)", type="paths")
def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group: specify group for tests should run in same session.")
@pytest.fixture(scope="session")
def worker_id():
    \"\"\"Return the id of the current worker ('gw0', 'gw1', etc) or 'master'
    if running on the master node.
    \"\"\"
    return "master"
@pytest.fixture(scope="session")
def testrun_uid():
    \"\"\"Return the unique id of the current test.\"\"\"
    return uuid.uuid4().hex
"""

def register_standin(pluginmanager):
    mod = types.ModuleType("xdist_standin")
    exec(compile(STANDIN, "<xdist-standin>", "exec"), mod.__dict__)
    pluginmanager.register(mod, "xdist_standin")

# A top-level find_spec imports nothing.
INSTALLED = importlib.util.find_spec("xdist") is not None

class Passthrough:
    def pytest_addhooks(self, pluginmanager):
        if INSTALLED:
            return
        # Registered before pytest parses anything, as pytest-xdist's own plugin would be;
        # `-p xdist` (with PYTEST_DISABLE_PLUGIN_AUTOLOAD) names what the stand-in provides.
        register_standin(pluginmanager)
        consider = pluginmanager.consider_pluginarg
        def consider_pluginarg(arg):
            if arg.strip() != "xdist":
                consider(arg)
        pluginmanager.consider_pluginarg = consider_pluginarg

    @pytest.hookimpl(tryfirst=True)
    def pytest_load_initial_conftests(self, early_config):
        # Installed: pytest has loaded it by now unless it is not to be loaded.
        if INSTALLED and not early_config.pluginmanager.has_plugin("xdist"):
            register_standin(early_config.pluginmanager)

import os
plugins = [Passthrough()]
shard_fds = os.environ.pop("XDIST_SHARD_FDS", None)
if shard_fds:
    import json
    shard_r, shard_w = (int(x) for x in shard_fds.split(","))
    os.set_inheritable(shard_r, False)
    os.set_inheritable(shard_w, False)
    class XdistShard:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, config, items):
            with os.fdopen(shard_w, "w") as out:
                out.write(json.dumps([item.nodeid for item in items]) + "\n")
            with os.fdopen(shard_r) as answer:
                keep = set(json.loads(answer.readline()))
            other = [item for i, item in enumerate(items) if i not in keep]
            if other:
                config.hook.pytest_deselected(items=other)
            items[:] = [item for i, item in enumerate(items) if i in keep]
    plugins.append(XdistShard())
raise SystemExit(pytest.main(sys.argv[1:], plugins=plugins))
"#;

/// `--shard` for a plain run: the shard and the duration history to split by.
pub struct PlainShard {
    pub shard: Shard,
    pub history: Option<crate::durations::History>,
}

fn start_error(python: &Path, err: std::io::Error) -> CliError {
    CliError::Usage(format!(
        "failed to start {}: {err}; pass --python PATH of an interpreter that has pytest",
        python.display()
    ))
}

pub fn run_plain_pytest(
    python: &Path,
    args: &[String],
    cwd: &Path,
    shard: Option<PlainShard>,
) -> Result<i32, CliError> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(RUNNER).args(args).current_dir(cwd);
    let Some(shard) = shard else {
        return Err(start_error(python, cmd.exec()));
    };
    let pipe = |_| CliError::Internal("cannot create a pipe".into());
    let (ids_r, ids_w) = std::io::pipe().map_err(pipe)?;
    let (keep_r, keep_w) = std::io::pipe().map_err(pipe)?;
    let (child_r, child_w) = (keep_r.as_raw_fd(), ids_w.as_raw_fd());
    cmd.env(envnames::XDIST_SHARD_FDS, format!("{child_r},{child_w}"));
    // SAFETY: only fcntl between fork and exec: the child keeps its two pipe ends.
    unsafe {
        cmd.pre_exec(move || {
            libc::fcntl(child_r, libc::F_SETFD, 0);
            libc::fcntl(child_w, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| start_error(python, e))?;
    drop((keep_r, ids_w));
    // pytest handles Ctrl-C itself (it is in our process group); we wait for its verdict.
    // SAFETY: ignoring SIGINT in this process only.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let mut line = String::new();
    let mut empty_shard = None;
    // No line: pytest ended before collecting (usage error, collection errors with -x...).
    if BufReader::new(ids_r)
        .read_line(&mut line)
        .is_ok_and(|n| n > 0)
    {
        let ids: Vec<String> = serde_json::from_str(&line).map_err(|e| {
            CliError::Internal(format!("bad collection from the pytest process: {e}"))
        })?;
        let durations = match shard.shard.by {
            ShardBy::Duration => shard.history.as_ref().and_then(|h| h.estimates(&ids)),
            ShardBy::Hash => None,
        };
        let keep = crate::run::shard::select(&ids, shard.shard, durations.as_deref());
        if keep.is_empty() && !ids.is_empty() {
            empty_shard = Some(ids.len());
        }
        let mut w = keep_w;
        let _ = writeln!(w, "{}", serde_json::json!(keep));
    }
    let status = child
        .wait()
        .map_err(|e| CliError::Internal(format!("waiting for pytest: {e}")))?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    match empty_shard {
        // pytest's "no tests collected" (5): for an empty shard that is a pass.
        Some(n) if code == xdist_core::exit::ExitCode::NoTestsCollected.code() => {
            eprintln!(
                "{}",
                crate::report::text::empty_shard_line(shard.shard.index, shard.shard.total, n)
            );
            Ok(0)
        }
        _ => Ok(code),
    }
}
