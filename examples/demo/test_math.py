"""A small, friendly suite: run it with `xdist -n 2 examples/demo`."""
import math
import time

import pytest


@pytest.mark.parametrize("n", range(10))
def test_square_root(n):
    time.sleep(0.05)
    assert math.isqrt(n * n) == n


@pytest.mark.parametrize("a,b,expected", [(1, 2, 3), (2, 2, 4), (10, -3, 7), (0.1, 0.2, 0.3)])
def test_add(a, b, expected):
    assert a + b == expected  # 0.1 + 0.2 != 0.3: one failure


def test_factorial():
    assert math.factorial(5) == 120


@pytest.mark.xfail(reason="floating point is hard")
def test_float_equality():
    assert 0.1 * 3 == 0.3


@pytest.mark.skip(reason="demonstrates a skip")
def test_not_ready():
    assert False
