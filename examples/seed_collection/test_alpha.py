import pytest


@pytest.mark.parametrize("n", range(3))
def test_alpha(n):
    assert n < 3
