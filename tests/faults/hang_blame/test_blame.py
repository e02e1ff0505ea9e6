"""Run with --hang-timeout 2: tests around and past the timeout, each followed by quick
ones. Only the tests still running after the timeout may fail, never the quick ones; the
stack request must not cut a sleep or a C call short."""
import ctypes
import time

import pytest


def sleep_in_python():
    time.sleep(1000)


def sleep_in_c():
    # libc sleep(3), GIL held: a signal on this thread would end it early.
    ctypes.PyDLL(None).sleep(1000)


@pytest.mark.parametrize("seconds", [1.0, 2.2, 2.4])
def test_near_timeout(seconds):
    time.sleep(seconds)


def test_hang_python():
    sleep_in_python()


def test_hang_c():
    sleep_in_c()


@pytest.mark.parametrize("n", range(6))
def test_quick(n):
    time.sleep(0.3)
