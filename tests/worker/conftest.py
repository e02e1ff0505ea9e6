"""Fixtures for testing the Python worker on its own (see workerproc.py), whole (the parts
concatenated, as embedded) or part by part (each module imported on its own).

Interpreters: `XDIST_TEST_PYTHON` (default `<repo>/.venv/bin/python`, else the interpreter
running these tests) for workers with plain pytest, and `XDIST_TEST_PYTHON_WITH_XDIST`
(default `<repo>/.venv-xdist/bin/python`) for workers where pytest-xdist is installed.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from workerproc import REPO, WORKER_CODE_DIR, WorkerProc, make_bootstrap  # noqa: E402

# Each part of the worker is importable on its own (test_channel.py, test_standin.py...);
# no __pycache__ is left in the crate.
sys.dont_write_bytecode = True
sys.path.insert(0, str(WORKER_CODE_DIR))


def _python(var, default_rel):
    value = os.environ.get(var)
    if value:
        return Path(value)
    return REPO / default_rel


@pytest.fixture(scope="session")
def worker_python():
    py = _python("XDIST_TEST_PYTHON", ".venv/bin/python")
    if not py.exists():
        py = Path(sys.executable)
    return py


@pytest.fixture(scope="session")
def xdist_python():
    py = _python("XDIST_TEST_PYTHON_WITH_XDIST", ".venv-xdist/bin/python")
    if not py.exists():
        if os.environ.get("XDIST_TEST_PYTHON_WITH_XDIST"):
            pytest.fail("XDIST_TEST_PYTHON_WITH_XDIST={} does not exist".format(py))
        pytest.skip("{} does not exist (run dev/venv.sh)".format(py))
    return py


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory):
    """An interpreter without pytest: a fresh venv with nothing installed."""
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        capture_output=True,
    )
    py = venv / "bin" / "python"
    probe = subprocess.run([str(py), "-c", "import pytest"], capture_output=True)
    assert probe.returncode != 0, "the bare venv can import pytest"
    return py


@pytest.fixture
def make_suite(tmp_path):
    """Writes `{relative path: source}` into `<tmp>/suite` and returns that directory."""

    def make(files):
        suite = tmp_path / "suite"
        for rel, source in files.items():
            path = suite / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        return suite

    return make


@pytest.fixture
def spawn(tmp_path, worker_python):
    """Starts a worker: `spawn(suite, python=None, **bootstrap_fields)`; killed at teardown."""
    started = []

    def start(suite, python=None, env=None, **fields):
        n = len(started)
        log_dir = tmp_path / "logs{}".format(n)
        log_dir.mkdir()
        boot = make_bootstrap(suite, tmp_path / "basetemp{}".format(n), **fields)
        w = WorkerProc(python or worker_python, suite, boot, log_dir, env=env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()
