import pytest


@pytest.mark.parametrize("n", [1, 2, 3])
def test_b(n):
    assert n
