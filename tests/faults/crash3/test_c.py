"""16 tests; test_kill_crash ends its worker with SIGKILL. Some tests share an
xdist_group (with the crashing one), for --dist loadgroup."""
import os
import signal

import pytest


@pytest.mark.parametrize("n", range(10))
def test_c(n):
    assert n >= 0


@pytest.mark.xdist_group("g")
@pytest.mark.parametrize("n", range(5))
def test_grouped(n):
    assert n >= 0


@pytest.mark.xdist_group("g")
def test_kill_crash():
    os.kill(os.getpid(), signal.SIGKILL)
