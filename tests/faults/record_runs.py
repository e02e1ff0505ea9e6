"""The conftest of every fault suite that has none of its own (faults.rs copies it in): each
test appends its node id to runs.log before running, so the Rust test can check that each
test (crashing or not) ran exactly once."""
import os

import pytest

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log")


@pytest.fixture(autouse=True)
def _record_run(request):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (request.node.nodeid + "\n").encode())
    finally:
        os.close(fd)
    yield
