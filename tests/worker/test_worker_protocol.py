"""The Python worker on its own: the channel protocol of `xdist-core/src/protocol.rs`,
driven from Python the way the Rust controller drives it. Run with
`.venv/bin/python -m pytest tests/worker -q`.
"""

import json
import os
import time

import pytest

from workerproc import by_type

REPORTS = """
import pytest

def test_pass():
    pass

def test_fail():
    assert 1 == 2

@pytest.mark.skip(reason="nope")
def test_skip():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert 0
"""

# Test 0 writes a marker file then sleeps: once the marker exists, the worker has taken
# index 0 and the next one (pytest needs the next item to run one) off its queue, and
# everything after is still queued.
SLOW_FIRST = """
import os, time

def test_slow():
    open(os.environ["MARKER"], "w").close()
    time.sleep(0.4)

def test_1():
    pass

def test_2():
    pass

def test_3():
    pass

def test_4():
    pass
"""


def reports_of(events, index):
    return [e for e in events if e["t"] == "report" and e.get("i") == index]


def call_report(events, index):
    (rep,) = [r for r in reports_of(events, index) if r["w"] == "call"]
    return rep


def done_indices(events):
    return [e["i"] for e in by_type(events, "done")]


def wait_for_file(path, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "{} never appeared".format(path)
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Session start and collection


def test_ready_then_collectionfinish_in_order(make_suite, spawn, worker_python):
    suite = make_suite({
        "test_b.py": "def test_z(): pass\ndef test_a(): pass\n",
        "test_a.py": "class TestK:\n    def test_m(self): pass\n\ndef test_f(): pass\n",
    })
    w = spawn(suite)
    ready = w.start()
    assert ready["protocol"] == 1
    info = ready["info"]
    assert info["executable"] == str(worker_python)
    assert info["pid"] == w.proc.pid
    assert info["cwd"] == str(suite)
    assert info["rootdir"] == str(suite)
    assert info["pytest_version"].split(".")[0].isdigit()
    assert info["version_info"][0] == 3
    for key in ("version", "sysplatform", "platform"):
        assert info[key]
    assert ready["header"], ready
    assert ready["header"][0].startswith("platform "), ready["header"]
    assert any(line.startswith("rootdir: ") for line in ready["header"])
    assert ready["options"]["tbstyle"] == "auto"

    fin = w.collected()
    # pytest's own order: files sorted, tests in definition order.
    assert fin["ids"] == [
        "test_a.py::TestK::test_m",
        "test_a.py::test_f",
        "test_b.py::test_z",
        "test_b.py::test_a",
    ]
    assert fin["errors"] == 0
    assert fin["deselected"] == 0
    assert fin["groups"] == []  # only computed for loadgroup/worksteal
    w.shutdown()
    rest = w.read_to_end()
    assert by_type(rest, "report") == []
    assert by_type(rest, "finished")[0]["exitstatus"] == 0
    assert w.wait() == 0


def test_no_header_unless_wanted(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\n"}), want_header=False)
    assert w.start()["header"] == []


def test_deselected_counted(make_suite, spawn):
    suite = make_suite({"test_a.py": "def test_keep(): pass\ndef test_drop(): pass\n"})
    w = spawn(suite, args=["-p", "no:cacheprovider", "-k", "keep", str(suite)])
    w.start()
    fin = w.collected()
    assert fin["ids"] == ["test_a.py::test_keep"]
    assert fin["deselected"] == 1


# ---------------------------------------------------------------------------------------------
# Running tests: reports, done, finished


def test_reports_done_finished(make_suite, spawn):
    w = spawn(make_suite({"test_r.py": REPORTS}))
    w.start()
    fin = w.collected()
    assert fin["ids"] == [
        "test_r.py::test_pass",
        "test_r.py::test_fail",
        "test_r.py::test_skip",
        "test_r.py::test_xfail",
    ]
    w.run(0, 1, 2, 3)
    w.shutdown()
    events = w.read_to_end()

    # Every test's full protocol, each followed by its `done`, in the order given.
    assert done_indices(events) == [0, 1, 2, 3]
    for d in by_type(events, "done"):
        assert isinstance(d["d"], float) and d["d"] >= 0
    for i in range(4):
        whens = [r["w"] for r in reports_of(events, i)]
        # Passing setup/teardown reports with nothing to show are not sent (see below).
        assert whens == (["setup"] if i == 2 else ["call"])
        done_at = events.index(by_type(events, "done")[i])
        assert all(events.index(r) < done_at for r in reports_of(events, i))
    for r in by_type(events, "report"):
        assert "nodeid" not in r  # same as the collected id at `i`
        assert isinstance(r["d"], float)

    passed = call_report(events, 0)
    assert (passed["o"], passed["c"], passed["l"], passed["W"]) == (
        "passed", "passed", ".", "PASSED")
    assert "body" not in passed and "short" not in passed

    failed = call_report(events, 1)
    assert (failed["o"], failed["c"], failed["l"], failed["W"]) == (
        "failed", "failed", "F", "FAILED")
    assert failed["head"] == "test_fail"
    assert failed["body"].startswith("[gw0] ")
    assert "def test_fail():" in failed["body"]
    assert "E       assert 1 == 2" in failed["body"]
    assert "test_r.py:8: AssertionError" in failed["body"]
    assert failed["short"] == "FAILED test_r.py::test_fail - assert 1 == 2"
    assert failed["location"] == ["test_r.py", 6, "test_fail"]

    (skipped,) = reports_of(events, 2)
    assert (skipped["w"], skipped["o"], skipped["c"], skipped["l"], skipped["W"]) == (
        "setup", "skipped", "skipped", "s", "SKIPPED")
    path, _lineno, reason = skipped["skip"]
    assert path == "test_r.py"
    assert reason.endswith("nope")

    xfailed = call_report(events, 3)
    assert (xfailed["o"], xfailed["c"], xfailed["l"], xfailed["W"]) == (
        "skipped", "xfailed", "x", "XFAIL")
    assert xfailed["xfail"] == "known"
    assert xfailed["short"] == "XFAIL test_r.py::test_xfail - known"

    (finished,) = by_type(events, "finished")
    assert events[-1] is finished
    assert finished["exitstatus"] == 1
    assert finished["workeroutput"]["exitstatus"] == 1
    assert w.wait() == 1


def test_a_test_waits_for_the_next_index_or_shutdown(make_suite, spawn):
    """pytest needs the next item to run one (fixture teardown), so the worker holds the
    last index it got until another index or `shutdown` arrives."""
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\ndef test_b(): pass\n"}))
    w.start()
    w.collected()
    w.run(0)
    assert w.poll(0.3) == []
    w.run(1)
    got = w.until("done")
    assert got[-1]["i"] == 0
    assert [r["w"] for r in reports_of(got, 0)] == ["call"]
    assert by_type(w.poll(0.3), "done") == []  # index 1 is now the held one
    w.shutdown()
    rest = w.read_to_end()
    assert done_indices(rest) == [1]
    assert by_type(rest, "finished")[0]["exitstatus"] == 0
    assert w.wait() == 0


def test_run_batches_accumulate(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "".join(
        "def test_{}(): pass\n".format(i) for i in range(6))}))
    w.start()
    w.collected()
    w.send({"t": "run", "indices": [4, 0]}, {"t": "run", "indices": [5]})
    w.send({"t": "run", "indices": [1]}, {"t": "shutdown"})
    assert done_indices(w.read_to_end()) == [4, 0, 5, 1]


# ---------------------------------------------------------------------------------------------
# steal, stop, and a controller that goes away


def test_steal_is_all_or_nothing(make_suite, spawn, tmp_path):
    marker = tmp_path / "started"
    w = spawn(make_suite({"test_s.py": SLOW_FIRST}), env={"MARKER": str(marker)})
    w.start()
    w.collected()
    w.run(0, 1, 2, 3, 4)
    wait_for_file(marker)  # 0 runs, 1 is held: 2, 3, 4 are queued

    # 99 is not queued: nothing is taken, not even 2.
    w.send({"t": "steal", "indices": [2, 99]})
    assert w.until("unscheduled")[-1]["indices"] == []
    # 1 is no longer in the queue (the worker holds it to run next).
    w.send({"t": "steal", "indices": [1, 2]})
    assert w.until("unscheduled")[-1]["indices"] == []
    # All queued: all taken, in the order asked.
    w.send({"t": "steal", "indices": [4, 2]})
    assert w.until("unscheduled")[-1]["indices"] == [4, 2]
    # Already taken.
    w.send({"t": "steal", "indices": [2]})
    assert w.until("unscheduled")[-1]["indices"] == []

    w.shutdown()
    w.read_to_end()
    assert done_indices(w.events) == [0, 1, 3]
    assert {r["i"] for r in by_type(w.events, "report")} == {0, 1, 3}
    assert w.wait() == 0


def test_steal_empty_request(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\n"}))
    w.start()
    w.collected()
    w.send({"t": "steal", "indices": []})
    assert w.until("unscheduled")[-1]["indices"] == []
    # Nothing queued at all.
    w.send({"t": "steal", "indices": [0]})
    assert w.until("unscheduled")[-1]["indices"] == []
    w.shutdown()
    assert done_indices(w.read_to_end()) == []
    assert w.wait() == 0


def test_stop_drops_the_queue(make_suite, spawn, tmp_path):
    marker = tmp_path / "started"
    w = spawn(make_suite({"test_s.py": SLOW_FIRST}), env={"MARKER": str(marker)})
    w.start()
    w.collected()
    w.run(0, 1, 2, 3, 4)
    wait_for_file(marker)
    w.send({"t": "stop"})
    events = w.read_to_end()
    # The running test finishes, and the one already taken as its `nextitem`; the rest of
    # the queue is dropped.
    assert done_indices(w.events) == [0, 1]
    assert by_type(events, "finished")[0]["exitstatus"] == 0
    assert w.wait() == 0


def test_stop_before_anything_ran(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\ndef test_b(): pass\n"}))
    w.start()
    w.collected()
    w.send({"t": "stop"})
    events = w.read_to_end()
    assert done_indices(events) == []
    assert len(by_type(events, "finished")) == 1
    w.wait()


def test_closing_the_channel_ends_the_worker(make_suite, spawn, tmp_path):
    marker = tmp_path / "started"
    w = spawn(make_suite({"test_s.py": SLOW_FIRST}), env={"MARKER": str(marker)})
    w.start()
    w.collected()
    w.run(0, 1, 2, 3, 4)
    wait_for_file(marker)
    w.close_channel()
    # A vanished controller is a `stop`: the running test and the held one finish, the
    # queue is dropped, the session ends and the process exits.
    events = w.read_to_end()
    assert done_indices(w.events) == [0, 1]
    assert len(by_type(events, "finished")) == 1
    assert w.wait() == 0


def test_closing_the_channel_while_idle(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\n"}))
    w.start()
    w.close_channel()
    w.read_to_end()
    assert done_indices(w.events) == []
    w.wait()


# ---------------------------------------------------------------------------------------------
# What tests see inside a worker

WORKER_ENV = """
import os

import pytest
import xdist


def test_env(request, worker_id, testrun_uid):
    assert os.environ["PYTEST_XDIST_WORKER"] == "gw3"
    assert os.environ["PYTEST_XDIST_WORKER_COUNT"] == "4"
    assert os.environ["PYTEST_XDIST_TESTRUNUID"] == "feedc0de"
    wi = request.config.workerinput
    assert wi["workerid"] == "gw3"
    assert wi["workercount"] == 4
    assert wi["testrunuid"] == "feedc0de"
    assert wi["mainargv"] == ["xdist", "-n", "4"]
    assert worker_id == "gw3"
    assert testrun_uid == "feedc0de"
    assert "XDIST_CHANNEL_FDS" not in os.environ


def test_xdist_module(request):
    assert xdist.is_xdist_worker(request)
    assert xdist.is_xdist_worker(request.session)
    assert not xdist.is_xdist_controller(request)
    assert xdist.get_xdist_worker_id(request) == "gw3"


def test_basetemp(tmp_path):
    assert os.environ["EXPECTED_BASETEMP"] in str(tmp_path)
"""


def run_all(w):
    """Runs every collected test; returns (events, failing call/setup reports)."""
    w.start()
    fin = w.collected()
    w.run(*range(len(fin["ids"])))
    w.shutdown()
    events = w.read_to_end()
    failures = [r for r in by_type(events, "report") if r["o"] == "failed"]
    return fin, events, failures


def _describe(failures):
    return "\n\n".join(r.get("body") or r.get("text") or str(r) for r in failures)


@pytest.mark.parametrize("which", ["pytest only", "with pytest-xdist"])
def test_worker_environment_visible_in_tests(which, make_suite, spawn, tmp_path, request):
    python = None
    if which == "with pytest-xdist":
        python = request.getfixturevalue("xdist_python")
    suite = make_suite({"test_env.py": WORKER_ENV})
    w = spawn(
        suite,
        python=python,
        workerid="gw3",
        workercount=4,
        testrunuid="feedc0de",
        env={"EXPECTED_BASETEMP": str(tmp_path / "basetemp0")},
    )
    fin, events, failures = run_all(w)
    assert len(fin["ids"]) == 3
    assert not failures, _describe(failures)
    assert done_indices(events) == [0, 1, 2]
    assert by_type(events, "finished")[0]["exitstatus"] == 0


def test_real_pytest_xdist_not_active_in_worker(make_suite, spawn, xdist_python):
    suite = make_suite({"test_p.py": """
        def test_plugins(request):
            pm = request.config.pluginmanager
            assert pm.get_plugin("dsession") is None
            assert request.config.option.dist == "no"
            import xdist, xdist.plugin  # the real package
            assert hasattr(xdist.plugin, "pytest_addoption")
    """})
    w = spawn(suite, python=xdist_python)
    _fin, _events, failures = run_all(w)
    assert not failures, _describe(failures)


# ---------------------------------------------------------------------------------------------
# xdist_group

GROUPS_A = """
import pytest

@pytest.mark.xdist_group("fn")
def test_fn():
    pass

def test_none():
    pass

@pytest.mark.xdist_group(name="cls")
class TestC:
    def test_m(self):
        pass

@pytest.mark.xdist_group("zeta")
@pytest.mark.xdist_group("alpha")
def test_two():
    pass
"""

GROUPS_B = """
import pytest

pytestmark = pytest.mark.xdist_group("mod")

def test_mod():
    pass

@pytest.mark.xdist_group("b")
def test_mod_and_b():
    pass
"""


def test_xdist_group_sent_for_loadgroup(make_suite, spawn):
    suite = make_suite({"test_ga.py": GROUPS_A, "test_gb.py": GROUPS_B})
    w = spawn(suite, dist="loadgroup")
    w.start()
    fin = w.collected()
    assert fin["ids"] == [
        "test_ga.py::test_fn",
        "test_ga.py::test_none",
        "test_ga.py::TestC::test_m",
        "test_ga.py::test_two",
        "test_gb.py::test_mod",
        "test_gb.py::test_mod_and_b",
    ]
    assert fin["groups"] == ["fn", None, "cls", "alpha_zeta", "mod", "b_mod"]
    # The marker is registered: no PytestUnknownMarkWarning.
    assert not [
        e for e in w.events if e["t"] == "warning" and "xdist_group" in e["message"]
    ]


def test_xdist_group_not_sent_for_load(make_suite, spawn):
    w = spawn(make_suite({"test_ga.py": GROUPS_A}), dist="load")
    w.start()
    assert w.collected()["groups"] == []


def test_no_groups_when_no_test_has_one(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\n"}), dist="loadgroup")
    w.start()
    assert w.collected()["groups"] == []


# ---------------------------------------------------------------------------------------------
# Failures to start or collect


def test_collection_error_reported_once(make_suite, spawn):
    suite = make_suite({
        "test_ok.py": "def test_ok(): pass\n",
        "test_bad.py": "import does_not_exist_anywhere\n\ndef test_never(): pass\n",
    })
    w = spawn(suite)
    w.start()
    got = w.until("collectionfinish")
    fin = got[-1]
    (cr,) = by_type(got, "collectreport")
    assert cr["r"]["nodeid"] == "test_bad.py"
    assert cr["r"]["o"] == "failed"
    assert cr["r"]["w"] == "collect"
    assert "does_not_exist_anywhere" in cr["r"]["body"]
    assert fin["ids"] == ["test_ok.py::test_ok"]
    assert fin["errors"] == 1
    # pytest does not run tests after a collection error: the worker only waits for the end.
    w.shutdown()
    rest = w.read_to_end()
    assert by_type(rest, "collectreport") == []
    assert done_indices(rest) == []
    # The session ends as failed (pytest-xdist's worker does the same; the controller, not
    # the worker, reports the collection error once for all workers).
    assert by_type(rest, "finished")[0]["exitstatus"] == 1
    assert w.wait() == 1


def test_unknown_path_is_a_usage_fatal(make_suite, spawn):
    suite = make_suite({"test_a.py": "def test_a(): pass\n"})
    w = spawn(suite, args=["-p", "no:cacheprovider", "does_not_exist.py"])
    w.start()
    events = w.read_to_end()
    fatals = by_type(events, "fatal")
    assert len(fatals) == 1, events
    assert fatals[0]["kind"] == "usage"
    assert fatals[0]["message"] == "ERROR: file or directory not found: does_not_exist.py"
    assert fatals[0]["exitstatus"] == 4
    assert events[-1] is fatals[0]
    assert by_type(events, "internal_error") == []
    assert w.wait() == 4
    assert "Traceback" not in w.stderr_text()


def test_quiet_reports_sent_when_durations_want_them(make_suite, spawn):
    suite = make_suite({"test_r.py": REPORTS})
    w = spawn(suite, args=["-p", "no:cacheprovider", "--durations=0", str(suite)])
    w.start()
    w.collected()
    w.run(0)
    w.shutdown()
    events = w.read_to_end()
    assert [r["w"] for r in reports_of(events, 0)] == ["setup", "call", "teardown"]
    # Setup/teardown of a passing test have an empty status: nothing to print.
    setup = reports_of(events, 0)[0]
    assert setup["o"] == "passed" and "l" not in setup and "W" not in setup


# ---------------------------------------------------------------------------------------------
# the summary step: a conftest's pytest_terminal_summary over the whole run's reports

SUMMARY_CONFTEST = '''
def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    tr.section("mine")
    for category in sorted(k for k in tr.stats if k):
        tr.write_line("{}: {}".format(category, sorted(r.nodeid for r in tr.stats[category])))
'''


def test_ready_names_summary_plugins_and_reports_carry_ser(make_suite, spawn):
    w = spawn(make_suite({"conftest.py": SUMMARY_CONFTEST,
                          "test_a.py": "def test_a(): pass\n"}))
    ready = w.start()
    assert any(name.endswith("conftest.py") for name in ready["summary_plugins"])
    w.collected()
    w.run(0)
    w.shutdown()
    call = call_report(w.read_to_end(), 0)
    assert json.loads(call["ser"])["nodeid"] == "test_a.py::test_a"


def test_no_summary_plugins_no_ser(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\n"}))
    assert w.start()["summary_plugins"] == []
    w.collected()
    w.run(0)
    w.shutdown()
    assert "ser" not in call_report(w.read_to_end(), 0)


def test_linger_then_summarize_other_workers_reports(make_suite, spawn):
    """After `linger` the worker finishes its tests, says `lingering`, and runs the hooks
    over the reports it is sent (here: its own plus one another worker ran)."""
    w = spawn(make_suite({"conftest.py": SUMMARY_CONFTEST,
                          "test_a.py": "def test_a(): pass\ndef test_b(): assert 0\n"}))
    w.start()
    w.collected()
    w.send({"t": "run", "indices": [0]}, {"t": "linger"})
    got = w.until("lingering")
    own = json.loads(call_report(got, 0)["ser"])
    other = dict(own, nodeid="test_a.py::test_b", outcome="failed", longrepr="boom")
    assert by_type(got, "finished") == []
    reports = [json.dumps({"w": "gw0", "r": own}), json.dumps({"w": "gw1", "r": other})]
    w.send({"t": "summarize", "reports": reports, "exitstatus": 1}, {"t": "shutdown"})
    summary = w.until("summary")[-1]
    assert summary["error"] is None
    lines = summary["text"].splitlines()
    assert "mine" in lines[0]
    assert lines[1:] == ["failed: ['test_a.py::test_b']", "passed: ['test_a.py::test_a']"]
    assert by_type(w.read_to_end(), "finished")[0]["exitstatus"] == 0
    assert w.wait() == 0


def test_live_log_records_are_events_in_order(make_suite, spawn):
    suite = make_suite({
        "pytest.ini": "[pytest]\nlog_cli = true\nlog_cli_level = INFO\n",
        "test_l.py": "import logging\ndef test_a():\n    logging.getLogger('t').info('one')\n",
    })
    w = spawn(suite, args=["-p", "no:cacheprovider", str(suite)])
    w.start()
    w.collected()
    w.run(0)
    w.shutdown()
    events = w.read_to_end()
    logs = by_type(events, "log")
    assert [e["text"] for e in logs] == ["INFO     t:test_l.py:3 one"]
    # Sent while the test ran: before its call report.
    assert events.index(logs[0]) < events.index(call_report(events, 0))


def test_ready_names_controller_reasons(make_suite, spawn):
    """Hooks only pytest-xdist's controller calls, and conftests whose session hooks check
    for a worker, need a controller session; a conftest that only adds markers does not."""
    cases = [
        ("def pytest_configure_node(node):\n    pass\n", True),
        ("def pytest_configure(config):\n"
         "    if not hasattr(config, 'workerinput'):\n        pass\n", True),
        ("def pytest_configure(config):\n"
         "    config.addinivalue_line('markers', 'slow: slow')\n", False),
    ]
    for conftest, wanted in cases:
        w = spawn(make_suite({"conftest.py": conftest, "test_a.py": "def test_a(): pass\n"}))
        reasons = w.start()["controller_reasons"]
        assert bool(reasons) == wanted, (conftest, reasons)
        w.kill()


def test_dump_stacks_while_a_test_runs(make_suite, spawn, tmp_path):
    """`dump_stacks` is answered by the reader thread at once, with the running test's
    stack on stderr (what `--hang-timeout` shows for workers it cannot signal)."""
    marker = tmp_path / "started"
    w = spawn(make_suite({"test_s.py": SLOW_FIRST}), env={"MARKER": str(marker)})
    w.start()
    w.collected()
    w.run(0, 1)
    wait_for_file(marker)
    w.send({"t": "dump_stacks"})
    deadline = time.time() + 3
    while "in test_slow" not in w.stderr_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "in test_slow" in w.stderr_text()
    w.shutdown()
    assert done_indices(w.read_to_end()) == [0, 1]


# Objects made while collecting: a garbage-collector-tracked cycle held by the module.
GC_SEEN = """
import gc
import os

class Node:
    pass

HELD = Node()
HELD.me = HELD


def test_collector_is_ordinary_while_tests_run():
    assert gc.isenabled()
    # None of the worker's; the project's own (its conftest's) stays frozen.
    assert (gc.get_freeze_count() > 0) == (os.environ["PROJECT_FREEZES"] == "1")
    assert any(o is HELD for o in gc.get_objects())
    assert any(r is globals() for r in gc.get_referrers(HELD))
"""

GC_CONFTEST_FREEZES = """
import gc
gc.freeze()
"""

GC_UNCONFIGURE = """
import gc, os

def pytest_unconfigure(config):
    with open(os.environ["UNCONFIGURE_OUT"], "w") as out:
        out.write(str(gc.get_freeze_count()))
"""


@pytest.mark.parametrize("project_freezes", [False, True])
def test_tests_see_the_ordinary_garbage_collector(project_freezes, make_suite, spawn, tmp_path):
    """The worker freezes the heap while collecting (see `HeapFreezer`), but tests see every
    object and no freeze of ours; a project's own freeze is kept."""
    files = {"test_gc.py": GC_SEEN}
    if project_freezes:
        files["conftest.py"] = GC_CONFTEST_FREEZES
    w = spawn(make_suite(files), env={"PROJECT_FREEZES": "1" if project_freezes else "0"})
    fin, events, failures = run_all(w)
    assert len(fin["ids"]) == 1
    assert not failures, _describe(failures)


def test_heap_frozen_after_finished(make_suite, spawn, tmp_path):
    """After `finished` pytest's unconfigure no longer walks the whole heap."""
    out = tmp_path / "unconfigure.txt"
    suite = make_suite({"conftest.py": GC_UNCONFIGURE, "test_a.py": "def test_a(): pass\n"})
    w = spawn(suite, env={"UNCONFIGURE_OUT": str(out)})
    fin, events, failures = run_all(w)
    assert not failures, _describe(failures)
    assert by_type(events, "finished")
    w.wait()
    assert int(out.read_text()) > 0


WORKEROUTPUT_BYTES = """
def pytest_sessionfinish(session):
    out = session.config.workeroutput
    out["blob"] = b"\\x00\\x01zlib"
    out["names"] = {"a"}
    out["nested"] = {"inner": [b"x", 1]}
    out["unsendable"] = object()
"""


def test_workeroutput_bytes_and_sets_travel_tagged(make_suite, spawn):
    """What execnet carries for pytest-xdist and JSON cannot (syrupy's compressed report)
    travels tagged; what neither can is left out."""
    suite = make_suite({"conftest.py": WORKEROUTPUT_BYTES, "test_a.py": "def test_a(): pass\n"})
    fin, events, failures = run_all(spawn(suite))
    assert not failures, _describe(failures)
    out = by_type(events, "finished")[0]["workeroutput"]
    assert out["blob"] == {"__xdist_bytes__": "AAF6bGli"}
    assert out["names"] == {"__xdist_set__": ["a"]}
    assert out["nested"] == {"inner": [{"__xdist_bytes__": "eA=="}, 1]}
    assert "unsendable" not in out


UNCONFIGURE_RAISES = """
import warnings

def pytest_unconfigure(config):
    if HOW == "warn":  # an error under filterwarnings = error
        warnings.warn("deprecated in unconfigure", DeprecationWarning)
    else:
        raise RuntimeError("boom in unconfigure")
"""


@pytest.mark.parametrize("how", ["raise", "warn"])
def test_unconfigure_error_after_finished_is_no_internal_error(how, make_suite, spawn):
    """An exception out of pytest_unconfigure, after `finished`: `unconfigure_error` with the
    traceback, the session's exit status, never `internal_error`."""
    conftest = "HOW = {!r}\n".format(how) + UNCONFIGURE_RAISES
    suite = make_suite({
        "conftest.py": conftest,
        "pytest.ini": "[pytest]\nfilterwarnings = error\n",
        "test_a.py": "def test_a(): pass\n",
    })
    w = spawn(suite)
    fin, events, failures = run_all(w)
    assert not failures, _describe(failures)
    assert by_type(events, "finished")
    assert not by_type(events, "internal_error"), events
    (err,) = by_type(events, "unconfigure_error")
    want = "DeprecationWarning: deprecated" if how == "warn" else "RuntimeError: boom"
    assert want in err["text"], err["text"]
    assert w.wait() == 0
