//! `-n 0`, `--collect-only` and `--help`: plain pytest in the user's interpreter.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::error::CliError;

/// Runs pytest with xdist's options registered (so `-n` in `addopts` still parses) when
/// pytest-xdist is not installed; replaces this process.
const RUNNER: &str = r#"import sys, importlib.util
if sys.path and sys.path[0] == "":
    del sys.path[0]
import pytest
plugins = []
try:
    have_xdist = importlib.util.find_spec("xdist.plugin") is not None
except ImportError:  # no `xdist` package at all: find_spec imports the parent
    have_xdist = False
if not have_xdist:
    import uuid
    class XdistOptions:
        def pytest_addoption(self, parser):
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
        def pytest_configure(self, config):
            config.addinivalue_line("markers", "xdist_group: specify group for tests should run in same session.")
        @pytest.fixture(scope="session")
        def worker_id(self):
            return "master"
        @pytest.fixture(scope="session")
        def testrun_uid(self):
            return uuid.uuid4().hex
    plugins.append(XdistOptions())
raise SystemExit(pytest.main(sys.argv[1:], plugins=plugins))
"#;

pub fn run_plain_pytest(python: &Path, args: &[String], cwd: &Path) -> Result<i32, CliError> {
    let err = Command::new(python)
        .arg("-c")
        .arg(RUNNER)
        .args(args)
        .current_dir(cwd)
        .exec();
    Err(CliError::Usage(format!(
        "failed to start {}: {err}; pass --python PATH of an interpreter that has pytest",
        python.display()
    )))
}
