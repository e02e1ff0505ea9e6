"""`xdist_steps.py` on its own: the summary step and the controller session, each a real pytest
session in a child process fed what xdist-cli sends (`summary.rs`, `controller_session.rs`)."""

import json
import os
import subprocess
import threading

from _pytest.reports import TestReport, _report_to_json

from workerproc import WORKER_CODE_DIR

RUN = r"""
import json, os, sys
sys.path.insert(0, {dir!r})
import xdist_steps
# The first line byte by byte: the controller session reads the next ones from fd 0 itself.
line = b""
while not line.endswith(b"\n"):
    line += os.read(0, 1)
data = json.loads(line)
getattr(xdist_steps, data.pop("step"))(data)
"""

CONFTEST = """
import os


def pytest_sessionstart(session):
    os.environ["SET_BY_CONTROLLER"] = "yes"


def pytest_configure_node(node):
    node.workerinput["from_controller"] = node.gateway.id


def pytest_terminal_summary(terminalreporter, exitstatus):
    terminalreporter.write_sep("=", "conftest section")
    for rep in terminalreporter.stats.get("failed", []):
        terminalreporter.write_line("{} on {}, exit {}".format(
            rep.nodeid, rep.node.gateway.id, exitstatus))
"""


def failed_report():
    rep = TestReport(nodeid="test_a.py::test_x", location=("test_a.py", 0, "test_x"),
                     keywords={}, outcome="failed", longrepr="boom", when="call")
    data = dict(_report_to_json(rep), **{"$report_type": "TestReport"})
    return json.dumps({"w": "gw1", "r": data})


def step(python, cwd, lines):
    """Runs the step with `lines` on its stdin (the first gets the result pipe's fd); its
    replies from the result pipe, and what it printed."""
    r, w = os.pipe()
    lines = [dict(lines[0], result_fd=w)] + lines[1:]
    proc = subprocess.Popen(
        [str(python), "-c", RUN.format(dir=str(WORKER_CODE_DIR))], pass_fds=(w,),
        cwd=str(cwd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    os.close(w)
    got = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(r).read()))
    reader.start()
    out, err = proc.communicate("".join(json.dumps(x) + "\n" for x in lines), timeout=60)
    reader.join()
    replies = [json.loads(line) for line in got[0].splitlines() if line]
    assert replies, out + err
    step.output = out + err
    return replies


def test_summary_step_runs_the_conftests_summary_hook(make_suite, worker_python):
    suite = make_suite({"conftest.py": CONFTEST, "test_a.py": "def test_x(): assert 0\n"})
    (text,) = step(worker_python, suite, [{
        "step": "summarize", "args": ["-p", "no:cacheprovider"], "reports": [failed_report()],
        "warnings": [], "exitstatus": 1, "width": 40, "color": False, "workerinfo": {"gw1": {}},
    }])
    assert text == "=" * 11 + " conftest section " + "=" * 11 + "\n" \
        "test_a.py::test_x on gw1, exit 1\n", text


def test_controller_session_configures_nodes_then_summarizes(make_suite, worker_python):
    suite = make_suite({"conftest.py": CONFTEST, "test_a.py": "def test_x(): assert 0\n"})
    started, workerinput, summary = step(worker_python, suite, [
        {"step": "serve_controller", "args": ["-p", "no:cacheprovider"], "numprocesses": 2},
        {"t": "configure_node", "id": "gw1", "spec": "popen",
         "workerinput": {"workerid": "gw1", "blob": {"__xdist_bytes__": "AA=="}}},
        {"t": "finish", "reports": [failed_report()], "exitstatus": 1, "width": 40,
         "workerinfo": {"gw1": {}},
         "nodes": [{"id": "gw1", "workeroutput": {}}]},
    ])
    assert started == {"t": "started", "env": {"SET_BY_CONTROLLER": "yes"}}
    assert workerinput["workerinput"]["from_controller"] == "gw1"
    assert summary["t"] == "summary" and summary["exitstatus"] == 1
    assert "test_a.py::test_x on gw1, exit 1" in summary["text"]


LIFECYCLE = """
def pytest_xdist_auto_num_workers(config):
    print("auto_num_workers", config.option.numprocesses)
    return 3


def pytest_xdist_setupnodes(config, specs):
    print("setupnodes", [str(s) for s in specs], [s.id for s in specs], specs[1].python)


def pytest_xdist_newgateway(gateway):
    print("newgateway", gateway.id, repr(gateway.spec))


def pytest_configure_node(node):
    print("configure_node", node.workerinput["workerid"], node.config.option.numprocesses)


def pytest_testnodeready(node):
    print("ready", node.workerinput["workerid"], node.gateway.id, node.workerinfo["pid"])


def pytest_xdist_node_collection_finished(node, ids):
    print("collected", node.gateway.id, ids)


def pytest_runtest_logreport(report):
    print("logreport", report.nodeid, report.when, report.outcome, report.node.gateway.id)


def pytest_testnodedown(node, error):
    print("down", node.gateway.id, node.workeroutput, error)
"""


def test_controller_session_calls_each_hook_as_the_run_goes(make_suite, worker_python):
    suite = make_suite({"conftest.py": LIFECYCLE, "test_a.py": "def test_x(): assert 0\n"})
    replies = step(worker_python, suite, [
        {"step": "serve_controller", "args": ["-p", "no:cacheprovider"], "numprocesses": 2},
        {"t": "auto_num_workers", "kind": "auto"},
        {"t": "setupnodes", "specs": ["popen", "popen//python=python3", "popen//id=mine"]},
        {"t": "configure_node", "id": "gw0", "spec": "popen", "workerinput": {"workerid": "gw0"}},
        {"t": "testnodeready", "id": "gw0", "workerinfo": {"pid": 42}},
        {"t": "collection_finished", "id": "gw0", "ids": ["test_a.py::test_x"]},
        {"t": "report", "w": "gw0", "r": json.loads(failed_report())["r"]},
        {"t": "testnodedown", "id": "gw0", "workeroutput": {"n": 1}, "error": None},
        {"t": "finish", "reports": [], "exitstatus": 1, "width": 40,
         "nodes": [{"id": "gw0", "workeroutput": {"n": 1}}]},
    ])
    assert [r["t"] for r in replies] == ["started", "workers", "done", "workerinput", "summary"]
    assert replies[1]["count"] == 3
    lines = [line for line in step.output.splitlines() if line]
    assert lines == [
        "auto_num_workers auto",
        "setupnodes ['popen', 'popen//python=python3', 'popen//id=mine'] "
        "['gw0', 'gw1', 'mine'] python3",
        "newgateway gw0 <XSpec 'popen'>",
        "configure_node gw0 3",
        "ready gw0 gw0 42",
        "collected gw0 ['test_a.py::test_x']",
        "logreport test_a.py::test_x call failed gw0",
        # Once, though `finish` names the worker again.
        "down gw0 {'n': 1} None",
    ], step.output


def test_live_reports_are_not_replayed_but_summarized(make_suite, worker_python):
    suite = make_suite({"conftest.py": CONFTEST + LIFECYCLE, "test_a.py": "def test_x(): 0\n"})
    replies = step(worker_python, suite, [
        {"step": "serve_controller", "args": ["-p", "no:cacheprovider"], "numprocesses": 2},
        {"t": "report", "w": "gw1", "r": json.loads(failed_report())["r"]},
        {"t": "finish", "reports": [], "exitstatus": 1, "width": 40},
    ])
    assert step.output.count("logreport test_a.py::test_x") == 1, step.output
    assert "test_a.py::test_x on gw1, exit 1" in replies[-1]["text"]
