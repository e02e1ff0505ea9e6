"""The `xdist_rs` pytest plugin: hands `pytest -n N ...` to the `xdist` binary, once a project
opts in (ini `xdist_native = true`, or `XDIST_NATIVE=1`), so every script, tox/nox session,
IDE configuration and CI workflow that says `pytest -n auto` runs through xdist unchanged.

Without the opt-in it does nothing but declare what it needs: the ini key and, only when
pytest-xdist will not (not installed, or disabled with `-p no:xdist`), `-n/--numprocesses`.
Then `pytest -n 2` without the opt-in is a usage error that says what to do, as pytest's
"unrecognized arguments: -n" would be.

The hand-off happens in a `tryfirst` `pytest_load_initial_conftests`: `-n`, `addopts` and
`PYTEST_ADDOPTS` are parsed, no conftest is imported yet. It never happens inside xdist's own
processes (`XDIST_CONTROLLER_PID`, `PYTEST_XDIST_WORKER`, `XDIST_HANDED_OFF` in the
environment), nor for `pytest.main()` called from code (pytester), so it never loops.
"""

import importlib.util
import os
import shlex
import sys

import pytest

INI_KEY = "xdist_native"
# Names from crates/xdist-core/src/env.rs.
OPT_IN_ENV = "XDIST_NATIVE"
HANDED_OFF_ENV = "XDIST_HANDED_OFF"
CONTROLLER_ENV = "XDIST_CONTROLLER_PID"
WORKER_ENV = "PYTEST_XDIST_WORKER"
PYTHON_ENV = "XDIST_PYTHON"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# Whether this plugin declared -n (pytest-xdist absent): then `-n N` without the opt-in is ours
# to refuse.
_declared_numprocesses = False


def _pytest_xdist_declares_n(pluginmanager):
    if pluginmanager.is_blocked("xdist"):
        return False
    try:
        return importlib.util.find_spec("xdist.plugin") is not None
    except ImportError:  # no `xdist` package at all: find_spec imports the parent
        return False


def pytest_addoption(parser, pluginmanager):
    global _declared_numprocesses
    parser.addini(INI_KEY, "hand `pytest -n N` runs to the xdist binary (xdist-rs)",
                  type="bool", default=False)
    if _pytest_xdist_declares_n(pluginmanager) or _declared_already(parser, "-n"):
        # pytest-xdist declares it, or xdist's worker, summary step or plain-pytest runner did.
        return
    group = parser.getgroup("xdist", "distributed and subprocess testing")
    group._addoption("-n", "--numprocesses", dest="numprocesses", action="store",
                     metavar="numprocesses",
                     help="run through the xdist binary with N workers (N, auto or "
                          "logical); needs `xdist_native = true` or XDIST_NATIVE=1")
    _declared_numprocesses = True


def _declared_already(parser, name):
    # pytest's `_addoption` does not check for duplicates; argparse would fail later.
    groups = list(getattr(parser, "_groups", ())) + [getattr(parser, "_anonymous", None)]
    return any(name in option.names() for group in groups if group is not None
               for option in group.options)


def _opted_in(config):
    value = os.environ.get(OPT_IN_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        raise pytest.UsageError(
            "{}={!r}: set it to 1 (hand `pytest -n N` to xdist) or 0 (never), or unset it".format(
                OPT_IN_ENV, os.environ[OPT_IN_ENV]))
    return bool(config.getini(INI_KEY))


def _inside_xdist():
    return any(os.environ.get(name) for name in (CONTROLLER_ENV, WORKER_ENV, HANDED_OFF_ENV))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if _inside_xdist():
        return
    ns = early_config.known_args_namespace
    num = getattr(ns, "numprocesses", None)
    if num is None or str(num) == "0" or getattr(ns, "help", False) or getattr(ns, "version", False):
        return
    if not _opted_in(early_config):
        if _declared_numprocesses:
            raise pytest.UsageError(
                "-n {} needs pytest-xdist or the xdist hand-off: add `{} = true` to the pytest "
                "ini section (or set {}=1), or run `xdist -n {}` instead".format(
                    num, INI_KEY, OPT_IN_ENV, num))
        return
    invocation = early_config.invocation_params
    if tuple(invocation.args) != tuple(sys.argv[1:]):
        return  # pytest.main() from code (pytester): replacing its process is not ours to do
    _hand_off(early_config, list(invocation.args))


def _hand_off(config, args):
    from xdist_rs import XdistNotFound, find_xdist_bin

    try:
        xdist = find_xdist_bin()
    except XdistNotFound as exc:
        raise pytest.UsageError(str(exc))
    # pytest has fds 1/2 redirected to its global capture by now: give them back.
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()
    os.environ[HANDED_OFF_ENV] = shlex.join(["pytest", *args])
    # The workers run in the interpreter this pytest runs in, unless told otherwise.
    if not os.environ.get(PYTHON_ENV):
        os.environ[PYTHON_ENV] = sys.executable
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(xdist, [xdist, *args])
    except OSError as exc:
        raise pytest.UsageError("failed to start {}: {}; reinstall xdist-rs".format(xdist, exc))


def pytest_report_header(config):
    handed_off = os.environ.get(HANDED_OFF_ENV)
    if handed_off and os.environ.get(WORKER_ENV):
        return "xdist-rs: `{}` handed off to xdist ({} / {})".format(
            handed_off, INI_KEY, OPT_IN_ENV)
    return None
