import pytest


def test_pass():
    pass


def test_fail():
    assert 1 + 1 == 3


@pytest.mark.skip(reason="not today")
def test_skip():
    pass


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


def test_props(record_property):
    record_property("size", 3)


@pytest.mark.parametrize("n", range(4))
def test_param(n):
    assert n != 2


@pytest.fixture
def broken():
    raise RuntimeError("setup fails")


def test_error(broken):
    pass


def test_warns():
    import warnings

    warnings.warn(UserWarning("a warning for the summary"))


def test_subtests(subtests):
    for i in range(2):
        with subtests.test(i=i):
            assert i < 5
