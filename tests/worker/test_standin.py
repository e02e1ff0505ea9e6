"""`xdist_standin.py` on its own: a real pytest session (in a child process) with only the
stand-in's finder and `XdistOptions` registered, as a pytest-xdist controller process has them."""

import subprocess

from workerproc import WORKER_CODE_DIR

RUN = """
import sys
sys.path.insert(0, {dir!r})
import pytest
from xdist_standin import StandinFinder, XdistOptions
sys.meta_path.append(StandinFinder())
sys.exit(pytest.main(sys.argv[1:], plugins=[XdistOptions(None)]))
"""

CONFTEST = """
def pytest_configure_node(node):  # an xdist hook: loads only if its spec is registered
    pass
"""

TESTS = """
import pytest
import xdist
from xdist import get_xdist_worker_id, is_xdist_controller, is_xdist_worker


def test_api(request):
    assert xdist.__version__ == "3.8.0"
    assert not is_xdist_worker(request)
    assert is_xdist_controller(request)  # `--dist load` given, no workerinput
    assert get_xdist_worker_id(request) == "master"


@pytest.mark.xdist_group("g")
def test_marker_is_registered():
    import xdist.newhooks

    assert hasattr(xdist.newhooks, "pytest_handlecrashitem")
"""


def test_xdist_api_options_marker_and_hooks(make_suite, worker_python):
    suite = make_suite({"conftest.py": CONFTEST, "test_a.py": TESTS})
    args = ["-p", "no:cacheprovider", "--strict-markers", "-n", "3", "--dist", "load",
            "--report-log", "ignored.json", "-q", "test_a.py"]
    proc = subprocess.run(
        [str(worker_python), "-c", RUN.format(dir=str(WORKER_CODE_DIR))] + args,
        cwd=str(suite), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout, proc.stdout
