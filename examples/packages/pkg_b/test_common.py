import pytest


def test_level(level):
    assert level == "root"


def test_module_name():
    assert __name__ == "pkg_b.test_common"


@pytest.mark.parametrize("x", ["a", "b"])
def test_param(x):
    assert x in "ab"
