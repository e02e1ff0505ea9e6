"""`xdist_scheduling.py` through a real controller session (`serve_controller` in a child
process, fed what `session_scheduler.rs` sends): the seed's crash handler and its priority
scheduler, copied from `examples/`, and pytest-rerunfailures' crash handler."""

import subprocess

from test_steps import step
from workerproc import REPO, WORKER_CODE_DIR

EXAMPLES = REPO / "examples"
START = {"step": "serve_controller", "args": ["-p", "no:cacheprovider"], "numprocesses": 2}
CRASHED = "test_crash_recovery.py::test_always_exits"


def serve(python, cwd, requests, args=()):
    """The session's replies to `requests` (after its `started`), and what it printed."""
    start = dict(START, args=START["args"] + list(args))
    replies = step(python, cwd, [start] + requests)
    assert replies[0]["t"] == "started", step.output
    return replies[1:], [line for line in step.output.splitlines() if line]


def crash(nodeid, worker="gw0"):
    return {"t": "crashitem", "nodeid": nodeid, "worker": worker, "outcome": "failed",
            "when": "???",
            "longrepr": "worker '{}' crashed while running '{}'".format(worker, nodeid)}


def test_the_seeds_crash_handler_retries_three_times(worker_python):
    replies, printed = serve(worker_python, EXAMPLES / "crash_recovery", [
        {"t": "configure_node", "id": "gw0", "spec": "popen",
         "workerinput": {"workerid": "gw0"}},
    ] + [crash(CRASHED) for _ in range(4)])
    verdicts = [(r["outcome"], r["pending"]) for r in replies[1:]]
    assert verdicts == [("rerun", [CRASHED])] * 3 + [("crashed", [])]
    # What the handler printed comes in the reply (the Rust controller shows it in order).
    assert [r["output"] for r in replies[1:]] == [
        "Retrying crashed test {} (attempt {}/3)\n".format(CRASHED, k) for k in (1, 2, 3)
    ] + ["Test {} failed 3 times, marking as crashed\n".format(CRASHED)]
    assert not any("Retrying" in line for line in printed)
    assert replies[-1]["longrepr"] == "worker 'gw0' crashed while running '{}'".format(CRASHED)


def test_no_handler_leaves_the_crash_failed(worker_python, make_suite):
    suite = make_suite({"test_a.py": "def test_x(): pass\n"})
    (reply,), _ = serve(worker_python, suite, [crash("test_a.py::test_x")])
    assert (reply["outcome"], reply["pending"]) == ("failed", [])


def test_a_failing_handler_is_an_error_reply(worker_python, make_suite):
    suite = make_suite({"conftest.py": "def pytest_handlecrashitem(crashitem, report, sched):\n"
                                       "    raise ValueError('no ' + crashitem)\n"})
    (reply,), _ = serve(worker_python, suite, [crash("test_a.py::test_x")])
    assert reply["t"] == "error" and "ValueError: no test_a.py::test_x" in reply["error"]


def scheduling(method, **args):
    return dict(args, t="scheduling", m=method)


IDS = ["test_order.py::test_normal[0]", "test_order.py::test_normal[1]",
       "test_order.py::test_priority_login", "test_order.py::test_critical_payment"]


def test_the_seeds_priority_scheduler_sends_priority_tests_first(worker_python):
    replies, _ = serve(worker_python, EXAMPLES / "priority_scheduler", [
        {"t": "make_scheduler"},
        scheduling("add_node", node=0, id="gw0", spec="popen"),
        scheduling("add_node", node=1, id="gw1", spec="popen"),
        scheduling("add_node_collection", node=0, ids=IDS),
        scheduling("add_node_collection", node=1),
        scheduling("schedule"),
        scheduling("mark_test_complete", node=0, index=2, duration=0.1),
        scheduling("remove_node", node=1),
    ], args=["--priority-scheduler"])
    made, *calls = replies
    assert made == {"t": "scheduler", "name": "PriorityScheduler", "state": {
        "finished": False, "pending": False, "complete": False, "nodes": []}}
    assert calls[1]["state"]["nodes"] == [0, 1]
    assert calls[3]["state"] == {"finished": False, "pending": True, "complete": True,
                                 "nodes": [0, 1]}
    # Both priority tests first (indices 2 and 3), then the normal ones, two per node.
    # Both priority tests first (indices 2 and 3), then the normal ones, two per node; all
    # sent, the nodes are shut down (they run what they hold).
    assert calls[4]["actions"] == [
        {"run": 0, "indices": [2]}, {"run": 0, "indices": [3]},
        {"run": 1, "indices": [0]}, {"run": 1, "indices": [1]},
        {"shutdown": 0}, {"shutdown": 1}]
    assert calls[4]["state"]["finished"] is True
    assert calls[5]["actions"] == []
    # gw1 died running test_normal[0]: the crash item, its other test queued again.
    assert calls[6]["result"] == 0 and calls[6]["state"]["nodes"] == [0]


def test_without_its_option_the_dist_modes_scheduler_runs(worker_python):
    (made,), _ = serve(worker_python, EXAMPLES / "priority_scheduler", [{"t": "make_scheduler"}])
    assert made == {"t": "scheduler", "name": None}


RERUN_DB_PROBE = """
import socket, sys, time, types
sys.path.insert(0, sys.argv[1])
import pytest_rerunfailures as rerun
from xdist_scheduling import connect_rerun_db

server = rerun.ServerStatusDB()
config = types.SimpleNamespace()
for _ in range(500):  # the server listens from its own thread: wait for it
    try:
        connect_rerun_db(config, {"sock_port": server.sock_port, "statusdb_token": server.token})
        break
    except ConnectionRefusedError:
        time.sleep(0.01)
client = config.failures_db
unseen = 0
for k in range(50):
    client.set_test_reruns("test_a.py::test_{}".format(k), 1)
    unseen += server.get_test_reruns("test_a.py::test_{}".format(k)) != 1
print(unseen, client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
"""


def rerun_db_probe(python):
    """A worker's client of the real pytest-rerunfailures server, as `connect_rerun_db`
    makes it: (counts the server did not hold yet when asked, the socket's TCP_NODELAY)."""
    done = subprocess.run([str(python), "-c", RERUN_DB_PROBE, str(WORKER_CODE_DIR)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unseen, nodelay = done.stdout.split()
    return int(unseen), int(nodelay)


def test_a_rerun_count_is_with_the_controller_before_the_test_runs(xdist_python):
    # A test that kills its worker right away is rerun only if the controller already holds
    # its rerun count when the crash handler asks (pytest-rerunfailures sends it unacknowledged).
    assert rerun_db_probe(xdist_python)[0] == 0


def test_the_worker_sends_its_rerun_counts_without_delay(xdist_python):
    # Two writes then a read for every test: under Nagle's algorithm the second write waited
    # for the controller's delayed acknowledgement, about 40 ms a test.
    assert rerun_db_probe(xdist_python)[1] != 0
