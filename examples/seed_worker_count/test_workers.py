import os

import pytest


def test_worker_count_is_set_under_xdist():
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    assert count is None or int(count) >= 1


@pytest.mark.parametrize("n", range(11))
def test_more(n):
    assert n * 2 >= n
