"""`xdist_start.py` on its own and in a worker: the process set up as a pytest-xdist worker's,
pytest configured with a worker's overrides, and the fatal ends before a session starts."""

import json
import os
import subprocess

from workerproc import WORKER_CODE_DIR

PREPARE = """
import json, os, sys
sys.path.insert(0, {dir!r})
import xdist_start
sys.path.insert(0, "")
xdist_start.prepare_process(
    {{"sys_path": ["/extra"], "remote": {remote}}},
    {{"workerid": "gw3", "workercount": 4, "testrunuid": "r1"}},
)
print(json.dumps({{
    "env": [os.environ.get(k) for k in
            ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")],
    "path0": sys.path[0],
    "extra_last": sys.path[-1] == "/extra",
    "pythonpath": os.environ.get("PYTHONPATH"),
    "finder": type(sys.meta_path[-1]).__name__,
}}))
"""


def prepare(python, tmp_path, remote):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [str(python), "-c", PREPARE.format(dir=str(WORKER_CODE_DIR), remote=remote)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_prepare_process_gives_a_pytest_xdist_workers_environment(worker_python, tmp_path):
    local = prepare(worker_python, tmp_path, remote=False)
    assert local["env"] == ["gw3", "4", "r1"]
    # Like the `pytest` command: the current directory is not first on sys.path.
    assert local["path0"] not in ("", str(tmp_path))
    assert local["extra_last"]
    assert local["pythonpath"] is None
    assert local["finder"] == "StandinFinder"
    # A remote worker imports from its synced working directory, as pytest-xdist's does.
    remote = prepare(worker_python, tmp_path, remote=True)
    assert remote["path0"] == str(tmp_path)
    assert remote["pythonpath"] == str(tmp_path)


CONFTEST = """
import json, os

def pytest_configure(config):
    opt = config.option
    with open(os.path.join(os.path.dirname(__file__), "seen.json"), "w") as f:
        json.dump({
            "dist": opt.dist, "numprocesses": opt.numprocesses, "looponfail": opt.looponfail,
            "usepdb": opt.usepdb, "loadgroup": opt.loadgroup, "basetemp": opt.basetemp,
            "workerid": config.workerinput["workerid"], "workeroutput": config.workeroutput,
            "env": os.environ["PYTEST_XDIST_WORKER"],
        }, f)
"""


def test_configure_overrides_what_only_the_controller_does(make_suite, spawn, tmp_path):
    suite = make_suite({"conftest.py": CONFTEST, "test_a.py": "def test_a(): pass\n"})
    w = spawn(suite, dist="loadgroup", workerid="gw1",
              args=["-p", "no:cacheprovider", "--pdb", str(suite)])
    w.collected()
    w.shutdown()
    w.read_to_end()
    assert w.wait() == 0
    seen = json.loads((suite / "seen.json").read_text())
    assert seen["dist"] == "no" and seen["numprocesses"] is None
    assert (seen["looponfail"], seen["usepdb"], seen["loadgroup"]) == (False, False, True)
    assert seen["basetemp"] == str(tmp_path / "basetemp0")
    assert (seen["workerid"], seen["env"], seen["workeroutput"]) == ("gw1", "gw1", {})


def test_missing_pytest_is_fatal(make_suite, spawn, bare_python):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\n"}), python=bare_python)
    events = w.read_to_end()
    assert [e["t"] for e in events] == ["fatal"], events
    assert events[0]["kind"] == "no_pytest"
    assert "pytest" in events[0]["message"]
    assert w.wait() == 4


def test_protocol_mismatch_is_fatal(make_suite, spawn):
    w = spawn(make_suite({"test_a.py": "def test_a(): pass\n"}), protocol=99)
    events = w.read_to_end()
    assert [e["t"] for e in events] == ["fatal"], events
    assert events[0]["kind"] == "protocol"
    assert "99" in events[0]["message"]
    assert w.wait() == 3


def test_bad_pytest_option_is_a_usage_fatal(make_suite, spawn):
    suite = make_suite({"test_a.py": "def test_a(): pass\n"})
    w = spawn(suite, args=["--no-such-option", str(suite)])
    events = w.read_to_end()
    assert [e["t"] for e in events] == ["fatal"], events
    assert events[0]["kind"] == "usage"
    assert "--no-such-option" in events[0]["message"]
    assert w.wait() == 4
