"""xdist worker, part 2 of 6: what pytest-xdist provides in any pytest process.

The `xdist` module stand-in (importable in tests and conftests when pytest-xdist is not
installed; when it is, the real package wins: this finder comes last on sys.meta_path), the
xdist hook specifications, and `XdistOptions`, pytest-xdist's options and marker. Used by the
worker session and by the controller session (`xdist_steps.py`). Needs no other part.
"""

XDIST_STANDIN = '''
"""xdist's worker-side API, provided by the xdist binary (pytest-xdist compatible)."""
__version__ = "3.8.0"
__all__ = ["__version__", "is_xdist_worker", "is_xdist_controller", "is_xdist_master",
           "get_xdist_worker_id"]

def _config(request_or_session):
    return request_or_session.config

def is_xdist_worker(request_or_session):
    return hasattr(_config(request_or_session), "workerinput")

def is_xdist_controller(request_or_session):
    config = _config(request_or_session)
    return not is_xdist_worker(request_or_session) and getattr(
        config.option, "dist", "no") not in (None, "no")

is_xdist_master = is_xdist_controller

def get_xdist_worker_id(request_or_session):
    if hasattr(_config(request_or_session), "workerinput"):
        return _config(request_or_session).workerinput["workerid"]
    return "master"
'''

NEWHOOKS_STANDIN = '''
"""xdist hook specifications, so conftest files implementing them load."""
import pytest

@pytest.hookspec()
def pytest_xdist_setupnodes(config, specs):
    """Called before any remote node is set up."""

@pytest.hookspec()
def pytest_xdist_newgateway(gateway):
    """Called on new raw gateway creation."""

@pytest.hookspec(warn_on_impl=DeprecationWarning(
    "rsync feature is deprecated and will be removed in pytest-xdist 4.0"))
def pytest_xdist_rsyncstart(source, gateways):
    """Called before rsyncing a directory to remote gateways takes place."""

@pytest.hookspec(warn_on_impl=DeprecationWarning(
    "rsync feature is deprecated and will be removed in pytest-xdist 4.0"))
def pytest_xdist_rsyncfinish(source, gateways):
    """Called after rsyncing a directory to remote gateways takes place."""

@pytest.hookspec(firstresult=True)
def pytest_xdist_getremotemodule():
    """Called when creating remote node."""

@pytest.hookspec()
def pytest_configure_node(node):
    """Configure node information before it gets instantiated."""

@pytest.hookspec()
def pytest_testnodeready(node):
    """Test Node is ready to operate."""

@pytest.hookspec()
def pytest_testnodedown(node, error):
    """Test Node is down."""

@pytest.hookspec()
def pytest_xdist_node_collection_finished(node, ids):
    """Called by the controller node when a worker node finishes collecting."""

@pytest.hookspec(firstresult=True)
def pytest_xdist_make_scheduler(config, log):
    """Return a node scheduler implementation."""

@pytest.hookspec(firstresult=True)
def pytest_xdist_auto_num_workers(config):
    """Return the number of workers to spawn for --numprocesses=auto."""

@pytest.hookspec(firstresult=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """Handle a crashitem, modifying the report if necessary."""
'''


# What schedulers written for pytest-xdist import for their annotations (the seed's
# `PriorityScheduler`): the names, not pytest-xdist's implementations.
SCHEDULER_PROTOCOL_STANDIN = '''
"""pytest-xdist's `Scheduling` protocol, for annotations (xdist drives schedulers itself)."""
from typing import Protocol


class Scheduling(Protocol):
    """nodes, collection_is_completed, tests_finished, has_pending; add_node,
    add_node_collection, mark_test_complete, mark_test_pending,
    remove_pending_tests_from_node, remove_node, schedule."""
'''

WORKERMANAGE_STANDIN = '''
"""pytest-xdist's `WorkerController`, for annotations: a scheduler's nodes are xdist's."""


class WorkerController:
    """A worker as the controller drives it."""
'''


class StandinFinder:
    """Serves `xdist`, `xdist.newhooks` and the names schedulers import from the sources
    above."""

    SOURCES = {"xdist": XDIST_STANDIN, "xdist.newhooks": NEWHOOKS_STANDIN,
               "xdist.scheduler": "", "xdist.scheduler.protocol": SCHEDULER_PROTOCOL_STANDIN,
               "xdist.workermanage": WORKERMANAGE_STANDIN}
    PACKAGES = ("xdist", "xdist.scheduler")

    def find_spec(self, name, path=None, target=None):
        if name not in self.SOURCES:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(
            name, self, is_package=(name in self.PACKAGES)
        )

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ in self.PACKAGES:
            module.__path__ = []
        exec(compile(self.SOURCES[module.__name__], "<xdist>", "exec"), module.__dict__)


class XdistOptions:
    """What pytest-xdist registers in any pytest process: its hook specs, its options (so
    `-n`/`--dist` in addopts or PYTEST_ADDOPTS still parse) and the `xdist_group` marker.

    `numprocesses` is the `-n` default: the worker count, as a pytest-xdist worker sees it.
    Plugins that decide at startup whether the run is distributed (pytest-cov) must see that
    it is.
    """

    def __init__(self, numprocesses, name=None):
        self.numprocesses = numprocesses
        if name:
            # pluggy registers a plugin under its `__name__`: as "xdist", `hasplugin("xdist")`
            # is true and an installed pytest-xdist's entry point (same name) is skipped.
            self.__name__ = name

    def pytest_addhooks(self, pluginmanager):
        # Our own copy of the specs: importing an installed pytest-xdist this early would
        # defeat pytest's assertion rewriting of it.
        import types

        specs = types.ModuleType("xdist_hookspecs")
        exec(compile(NEWHOOKS_STANDIN, "<xdist-hookspecs>", "exec"), specs.__dict__)
        pluginmanager.add_hookspecs(specs)
        if getattr(self, "__name__", None) != "xdist":
            # A worker keeps pytest-xdist out (`-p no:xdist`); a user's `-p xdist` (with
            # PYTEST_DISABLE_PLUGIN_AUTOLOAD) asks for what this process already provides.
            consider = pluginmanager.consider_pluginarg

            def consider_pluginarg(arg):
                if arg.strip() not in ("xdist", "xdist.plugin", "xdist.looponfail"):
                    consider(arg)

            pluginmanager.consider_pluginarg = consider_pluginarg

    def pytest_addoption(self, parser):
        # A usage error names the command the user typed, not `-c` (this program's argv[0]).
        parser.prog = "xdist"
        group = parser.getgroup("xdist", "distributed and subprocess testing")
        group._addoption("-n", "--numprocesses", dest="numprocesses", action="store",
                         default=self.numprocesses)
        group.addoption("--maxprocesses", dest="maxprocesses", action="store")
        group.addoption("--max-worker-restart", dest="maxworkerrestart", action="store")
        group.addoption("--dist", dest="dist", action="store", default="no")
        group.addoption("--loadscope-reorder", dest="loadscopereorder",
                        action="store_true", default=True)
        group.addoption("--no-loadscope-reorder", dest="loadscopereorder",
                        action="store_false")
        group.addoption("--tx", dest="tx", action="append", default=[])
        group.addoption("--px", dest="px", action="append", default=[])
        group._addoption("-d", action="store_true", dest="distload", default=False)
        group.addoption("--rsyncdir", action="append", default=[])
        group.addoption("--rsyncignore", action="append", default=[])
        group.addoption("--testrunuid", action="store")
        group.addoption("--maxschedchunk", action="store")
        group._addoption("-f", "--looponfail", action="store_true", dest="looponfail",
                         default=False)
        parser.addini("rsyncdirs", "rsync roots (xdist)", type="paths")
        parser.addini("rsyncignore", "rsync ignores (xdist)", type="paths")
        parser.addini("looponfailroots", "looponfail roots (xdist)", type="paths")
        parser.addini("hang_timeout", "xdist: seconds before a running test counts as hung")

    def pytest_load_initial_conftests(self, early_config, parser, args):
        # `--report-log` is pytest-reportlog's option; the controller writes the log, so
        # accept it even when that plugin is not installed (its own option wins if it is).
        names = {name for opt in parser._anonymous.options for name in opt.names()}
        for group in parser._groups:
            names.update(name for opt in group.options for name in opt.names())
        group = parser.getgroup("terminal reporting")
        try:
            if "--report-log" not in names:
                group.addoption("--report-log", action="store", metavar="path",
                                default=None, dest="report_log",
                                help="Path to line-based json objects of test session events.")
            if "--report-log-exclude-logs-on-passed-tests" not in names:
                group.addoption("--report-log-exclude-logs-on-passed-tests",
                                action="store_true", default=False,
                                dest="report_log_exclude_logs_on_passed_tests",
                                help="Don't capture logs for passing tests")
        except ValueError:
            pass

    def pytest_configure(self, config):
        config.addinivalue_line(
            "markers", "xdist_group: specify group for tests should run in same session."
        )
