"""Tests that fork. The children that return into pytest (no `os._exit`) must end at once
(they would run the worker's next tests and then wait for work forever, outliving the
run); children that end themselves, and multiprocessing's fork children, work as usual."""
import logging
import multiprocessing
import os
import threading

import pytest


def _wait(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_child_returns():
    pid = os.fork()
    if pid == 0:
        return
    assert _wait(pid) == 0


def test_child_raises():
    pid = os.fork()
    if pid == 0:
        raise RuntimeError("in the child")
    # Its session would have failed there.
    assert _wait(pid) == 1


def test_child_returns_not_waited_for():
    # Nobody waits: the copy must still not outlive the run.
    os.fork()


@pytest.fixture
def forked_in_setup():
    pid = os.fork()
    yield pid
    if pid:
        assert _wait(pid) == 0


def test_fork_in_setup(forked_in_setup):
    # Only the parent gets here.
    assert forked_in_setup != 0


@pytest.fixture
def forks_in_teardown():
    yield
    pid = os.fork()
    if pid:
        assert _wait(pid) == 0


def test_fork_in_teardown(forks_in_teardown):
    pass


def test_fork_from_a_thread():
    pids = []

    def fork():
        pid = os.fork()
        if pid:
            pids.append(pid)

    t = threading.Thread(target=fork)
    t.start()
    t.join()
    assert _wait(pids[0]) == 0


def test_child_ends_itself():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert _wait(pid) == 7


def _square(q, n):
    # Under log_cli the worker forwards records: not from a fork, which goes on.
    logging.getLogger("fork-child").warning("squaring %d", n)
    q.put(n * n)


def test_multiprocessing_fork():
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_square, args=(q, 7))
    p.start()
    assert q.get(timeout=20) == 49
    p.join(20)
    assert p.exitcode == 0


@pytest.mark.parametrize("n", range(6))
def test_later(n):
    pass
