"""xfail, strict xfail, xpass, runtime xfail, raises=, run=False."""
import pytest


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 1 == 2


@pytest.mark.xfail(reason="maybe fixed")
def test_xpass():
    assert 1 == 1


@pytest.mark.xfail(reason="strict", strict=True)
def test_xpass_strict():
    assert 1 == 1


@pytest.mark.xfail(reason="strict and failing", strict=True)
def test_xfail_strict_fails():
    assert 1 == 2


def test_xfail_runtime():
    pytest.xfail("imperative xfail")


@pytest.mark.xfail(raises=ZeroDivisionError, reason="right exception")
def test_xfail_raises_matching():
    1 / 0


@pytest.mark.xfail(raises=ZeroDivisionError, reason="wrong exception")
def test_xfail_raises_other():
    raise KeyError("not a zero division")


@pytest.mark.xfail(run=False, reason="not even run")
def test_xfail_not_run():
    import os
    os._exit(1)


@pytest.mark.xfail(False, reason="condition false")
def test_xfail_condition_false():
    assert True


@pytest.mark.parametrize(
    "n", [1, pytest.param(2, marks=pytest.mark.xfail(reason="param xfail")), 3]
)
def test_param_xfail(n):
    assert n != 2


class TestXfailClass:
    pytestmark = pytest.mark.xfail(reason="class xfail")

    def test_one(self):
        assert False

    def test_two(self):
        assert True


def test_pass():
    assert True
