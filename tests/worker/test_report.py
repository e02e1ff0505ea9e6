"""`xdist_report.py`: the report messages `WorkerPlugin` sends, compared with what plain pytest
prints for the same suite (`-v` location lines, `-r` lines of skips and xfails)."""

import json

from workerproc import plain_pytest, session_events

TESTS = """
import pytest

def test_skipped():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known bug")
def test_xfailed():
    assert 0
"""

ARGS = ["-p", "no:cacheprovider", "-v", "-rsx", "test_a.py"]


def test_skip_and_xfail_render_as_pytest_prints_them(make_suite, worker_python):
    suite = make_suite({"test_a.py": TESTS})
    events = session_events(worker_python, suite, ARGS)
    plain = plain_pytest(worker_python, suite, ARGS).splitlines()
    skip = next(e for e in events if e["t"] == "report" and e.get("c") == "skipped")
    xfail = next(e for e in events if e["t"] == "report" and e.get("c") == "xfailed")
    assert (skip["l"], skip["W"], xfail["l"], xfail["W"]) == ("s", "SKIPPED", "x", "XFAIL")
    assert skip["skip"] == ["test_a.py", 5, "Skipped: not here"]
    assert xfail["xfail"] == "known bug"
    # `-v` lines: pytest prints `<location line><WORD>` then the progress column.
    for rep in (skip, xfail):
        line = rep["loc"] + rep["W"]
        assert any(p.startswith(line) for p in plain), (line, plain)
    # `-r` lines: the skip's is keyed (`SKIPPED [1] file:line: reason`), the xfail's whole.
    assert "SKIPPED [1] test_a.py:5: not here" in plain
    assert xfail["short"] in plain, (xfail["short"], plain)


STATS_PROBE = """
import json, os

def pytest_sessionfinish(session):
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    with open(os.environ["STATS_OUT"], "w") as fh:
        json.dump({k: len(v) for k, v in tr.stats.items()}, fh)
"""


def test_worker_keeps_no_passing_setup_teardown_reports(make_suite, worker_python, monkeypatch,
                                                         tmp_path):
    # pytest files passing setup/teardown reports under stats[""] and shows them nowhere; a
    # worker (whose reporter prints nothing) drops them, so a forked worker copies no pages
    # for them. What pytest does show is still counted.
    suite = make_suite({"conftest.py": STATS_PROBE,
                        "test_a.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n"})
    out = tmp_path / "stats.json"
    monkeypatch.setenv("STATS_OUT", str(out))
    session_events(worker_python, suite, ["-p", "no:cacheprovider", "test_a.py"])
    stats = json.loads(out.read_text())
    assert stats.get("") == 0
    assert stats.get("passed") == 2
