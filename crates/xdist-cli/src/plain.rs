//! `-n 0`, `--collect-only`, `--help` and pytest's informational options (`--markers`,
//! `--fixtures`, `--fixtures-per-test`): plain pytest in the user's interpreter.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

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

raise SystemExit(pytest.main(sys.argv[1:], plugins=[Passthrough()]))
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
