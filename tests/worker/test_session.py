"""`xdist_session.py` and `xdist_report.py` on their own: `WorkerPlugin` in a real pytest
session (a child process), its events on a real pipe, its rendering compared with what plain
pytest prints for the same suite."""

from workerproc import plain_pytest, session_events

TESTS = """
def test_pass(worker_id):
    assert worker_id == "gw0"

def test_fail():
    assert 1 == 2
"""

ARGS = ["-p", "no:cacheprovider", "-rA", "test_a.py"]


def test_session_events_and_rendering_match_plain_pytest(make_suite, worker_python):
    suite = make_suite({"test_a.py": TESTS})
    events = session_events(worker_python, suite, ARGS)
    kinds = [e["t"] for e in events]
    assert kinds[:2] == ["ready", "collectionfinish"] and kinds[-1] == "finished", kinds
    assert events[1]["ids"] == ["test_a.py::test_pass", "test_a.py::test_fail"]
    assert [e["i"] for e in events if e["t"] == "done"] == [0, 1]
    calls = {e["i"]: e for e in events if e["t"] == "report" and e["w"] == "call"}
    assert (calls[0]["l"], calls[1]["l"], calls[1]["W"]) == (".", "F", "FAILED")
    assert events[-1]["exitstatus"] == 1

    plain = plain_pytest(worker_python, suite, ARGS)
    assert calls[1]["short"] in plain.splitlines(), (calls[1]["short"], plain)
    assert calls[1]["short"] == "FAILED test_a.py::test_fail - assert 1 == 2"
    # The traceback as pytest prints it under the test's header (the worker's line first).
    infoline, traceback = calls[1]["body"].split("\n", 1)
    assert infoline.startswith("[gw0] ")
    assert traceback.strip() in plain, (traceback, plain)
    assert "test_a.py:6: AssertionError" in traceback
