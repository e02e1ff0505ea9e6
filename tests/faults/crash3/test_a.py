"""17 tests; test_exit_crash ends its worker with os._exit(1)."""
import os

import pytest


@pytest.mark.parametrize("n", range(16))
def test_a(n):
    assert n >= 0


def test_exit_crash():
    os._exit(1)
