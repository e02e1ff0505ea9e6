"""Every grouped test records (group, worker) in a file shared by all workers
of one run, then asserts that every member of its group seen so far ran on its
own worker. Members run in any order, so whichever member of a split group
runs last fails.

The group of a test is pytest-xdist's: the sorted, '_'-joined names of all its
xdist_group marks (function, class and module level).
"""
import json
import os
import uuid

import pytest

_SERIAL_RUN_ID = uuid.uuid4().hex


def group_of(item):
    names = set()
    for mark in item.iter_markers("xdist_group"):
        names.add(str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")))
    return "_".join(sorted(names)) if names else None


@pytest.fixture
def group_check(request, tmp_path_factory):
    group = group_of(request.node)
    assert group is not None, "group_check used by an ungrouped test"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or _SERIAL_RUN_ID
    base = tmp_path_factory.getbasetemp()
    # Under xdist, basetemp is <run basetemp>/popen-gwN: the parent is shared
    # by the run's workers. Serially, the run's own basetemp will do.
    shared_dir = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    shared = shared_dir / f"xdist-groups-{run_id}.jsonl"
    line = json.dumps({"group": group, "worker": worker, "test": request.node.nodeid})
    with open(shared, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    with open(shared, encoding="utf-8") as fh:
        seen = [json.loads(x) for x in fh if x.strip()]
    others = {r["worker"]: r["test"] for r in seen if r["group"] == group and r["worker"] != worker}
    assert not others, f"group {group!r} split: {request.node.nodeid} on {worker}, but {others}"
    return group
