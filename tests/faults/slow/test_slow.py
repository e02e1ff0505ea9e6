"""Slow tests for Ctrl-C: each takes 1 s."""
import time

import pytest


@pytest.mark.parametrize("n", range(12))
def test_slow(n):
    time.sleep(1.0)
