"""Tests that crash their worker: the conftest's handler retries them up to 3 times."""
import ctypes
import os

import pytest


@pytest.fixture
def crashes_left(tmp_path_factory, testrun_uid):
    """True the first `times` times a test asks in this run (a count kept in a file the
    run's workers share: the worker that crashed cannot remember)."""

    def left(name, times):
        path = tmp_path_factory.getbasetemp().parent / "crashes-{}-{}".format(name, testrun_uid)
        count = int(path.read_text()) if path.exists() else 0
        path.write_text(str(count + 1))
        return count < times

    return left


def test_before():
    pass


def test_exits_twice_then_passes(crashes_left):
    if crashes_left("exit", 2):
        os._exit(1)


def test_segfaults_once_then_passes(crashes_left):
    if crashes_left("segv", 1):
        ctypes.string_at(0)


def test_always_exits():
    os._exit(3)


@pytest.mark.parametrize("n", range(3))
def test_after(n):
    pass
