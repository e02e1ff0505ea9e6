"""Tests that take a minute: only a second Ctrl-C ends them early."""
import time

import pytest


@pytest.mark.parametrize("n", range(4))
def test_stuck(n):
    time.sleep(60)
