"""Normal tests collected before the priority ones: `--priority-scheduler` runs the tests with
"priority" or "critical" in their id first. Each test records when and where it starts (to
$PRIORITY_ORDER_LOG, if set)."""
import os
import time

import pytest


@pytest.fixture(autouse=True)
def record_start(request):
    log = os.environ.get("PRIORITY_ORDER_LOG")
    if log:
        with open(log, "a") as f:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
            f.write("{} {} {}\n".format(time.time(), worker, request.node.nodeid))
    yield


@pytest.mark.parametrize("n", range(6))
def test_normal(n):
    time.sleep(0.05)


def test_priority_login():
    pass


def test_critical_payment():
    pass


@pytest.mark.parametrize("n", range(2))
def test_priority_search(n):
    pass
