"""17 tests; test_segv_crash ends its worker with SIGSEGV."""
import os
import signal

import pytest


@pytest.mark.parametrize("n", range(16))
def test_b(n):
    assert n >= 0


def test_segv_crash():
    # faulthandler (enabled by pytest) prints the stack, then the signal is re-raised.
    os.kill(os.getpid(), signal.SIGSEGV)
