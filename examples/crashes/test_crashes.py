"""Two tests kill their worker process; the others pass.

Under plain pytest the first crash kills pytest itself, so this suite is only
run distributed: expected 2 failed ('crashed while running'), 6 passed, exit 1.
"""
import ctypes
import os


def test_ok_1():
    assert True


def test_ok_2():
    assert True


def test_exit_crash():
    os._exit(1)


def test_ok_3():
    assert True


def test_segfault_crash():
    ctypes.string_at(0)


def test_ok_4():
    assert True
