import time

import pytest


@pytest.mark.parametrize("n", range(4))
def test_work(n):
    time.sleep(0.05)
    assert n >= 0


def test_fails():
    assert 1 == 2
