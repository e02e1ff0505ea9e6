"""Passes, failures with assertion diffs, classes, odd parametrize ids."""
import pytest


def test_pass():
    assert 1 + 1 == 2


def test_pass_list():
    assert [1, 2, 3] == [1, 2, 3]


def test_fail_str():
    assert "the quick brown fox" == "the quick brown cat"


def test_fail_multiline_str():
    a = "line one\nline two\nline three\n"
    b = "line one\nline 2\nline three\n"
    assert a == b


def test_fail_list():
    assert [1, 2, 3, 4] == [1, 2, 4, 4]


def test_fail_dict():
    assert {"a": 1, "b": {"c": [1, 2]}, "d": "x"} == {"a": 1, "b": {"c": [1, 3]}, "e": "x"}


def test_fail_exception():
    raise ValueError("something bad happened")


class TestClass:
    def test_method_pass(self):
        assert "abc".upper() == "ABC"

    def test_method_fail(self):
        assert len("abc") == 4

    class TestNested:
        def test_nested_pass(self):
            assert True


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "with space",
        "unicodé ☃ 日本",
        "a::b",
        "open[bracket",
        "close]bracket",
        "slash/path",
        "at@sign",
        "dash-and.dot",
        "",
    ],
)
def test_odd_ids(value):
    assert isinstance(value, str)


@pytest.mark.parametrize("a,b", [(1, 1), (2, 3), ("x", "x")], ids=["one", "two bad", "ex::ex"])
def test_param_ids(a, b):
    assert a == b


@pytest.mark.parametrize("n", range(5))
class TestParamClass:
    def test_even_or_small(self, n):
        assert n % 2 == 0 or n < 3


@pytest.mark.wip
def test_deselected_by_addopts():
    assert False, "deselected by -m 'not wip' in pytest.ini"
