"""Tests that break the worker's channel descriptors (fd 3: commands in, fd 4: events
out) while later tests wait: each must end as a crash of that test, the worker replaced."""
import os
import time

import pytest


@pytest.mark.parametrize("n", range(4))
def test_ok(n):
    pass


def test_dup2_stdout_over_events():
    os.dup2(1, 4)


def test_dup2_over_events_then_wait():
    # Its worker cannot report anything any more: killed without waiting 30 s.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 4)
    time.sleep(30)


def test_close_commands():
    os.close(3)


def test_close_events():
    os.close(4)


def test_devnull_over_commands():
    os.dup2(os.open(os.devnull, os.O_RDONLY), 3)


@pytest.mark.parametrize("n", range(30))
def test_later(n):
    pass
