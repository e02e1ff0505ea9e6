"""Hooks that act on pytest-xdist's controller, as real projects write them.

- once, on the controller (or in a plain pytest run): an environment variable every worker
  inherits;
- `pytest_configure_node`: something for each worker's `workerinput`;
- workers report how many tests they ran in `workeroutput`; the controller adds them up in
  `pytest_testnodedown` and writes the total in `pytest_sessionfinish` (to the file named
  by CONTROLLER_HOOKS_OUT, when set);
- each `pytest_configure` appends `controller` or `worker` to the file named by
  CONTROLLER_HOOKS_CONFIGURES, when set.
"""
import os
from pathlib import Path

TOTALS = {"ran": 0, "workers": 0}


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        os.environ["SHARED_MARK"] = "set-on-the-controller"
    log = os.environ.get("CONTROLLER_HOOKS_CONFIGURES")
    if log:
        with open(log, "a") as f:
            f.write("worker\n" if hasattr(config, "workerinput") else "controller\n")


def pytest_runtest_logreport(report):
    if report.when == "call":
        TOTALS["ran"] += 1


try:
    import xdist  # noqa: F401 (its hooks exist only where it is installed)
except ImportError:
    pass
else:

    def pytest_configure_node(node):
        node.workerinput["shared_token"] = "token-for-" + node.gateway.id

    def pytest_testnodedown(node, error):
        TOTALS["ran"] += node.workeroutput.get("ran", 0)
        TOTALS["workers"] += 1


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        config.workeroutput["ran"] = TOTALS["ran"]
        return
    out = os.environ.get("CONTROLLER_HOOKS_OUT")
    if out:
        # pytest-xdist's controller also sees every report: count those once.
        ran = TOTALS["ran"] if TOTALS["workers"] == 0 else TOTALS["ran"] // 2
        Path(out).write_text("exit {} ran {} workers {}".format(
            int(exitstatus), ran, TOTALS["workers"]))
