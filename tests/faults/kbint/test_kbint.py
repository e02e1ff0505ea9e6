"""test_interrupt raises KeyboardInterrupt inside its worker: the run ends as
pytest's would (exit 2)."""
import time

import pytest


@pytest.mark.parametrize("n", range(4))
def test_ok(n):
    time.sleep(0.05)


def test_interrupt():
    raise KeyboardInterrupt


@pytest.mark.parametrize("n", range(4))
def test_later(n):
    time.sleep(0.05)
