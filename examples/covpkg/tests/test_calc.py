import pytest

from covpkg import add, divide, mean


@pytest.mark.parametrize("a,b,s", [(1, 2, 3), (0, 0, 0), (-1, 1, 0)])
def test_add(a, b, s):
    assert add(a, b) == s


def test_divide():
    assert divide(6, 3) == 2


def test_mean():
    assert mean([1, 2, 3]) == 2
