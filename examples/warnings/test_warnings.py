"""UserWarning, DeprecationWarning, warnings from fixtures, pytest.warns."""
import warnings

import pytest


class CustomWarning(UserWarning):
    pass


def test_user_warning():
    warnings.warn("user warning from a test", UserWarning)


def test_deprecation_warning():
    warnings.warn("this thing is deprecated", DeprecationWarning)


def test_custom_warning():
    warnings.warn("custom warning category", CustomWarning)


def test_two_warnings_same_test():
    warnings.warn("first of two", UserWarning)
    warnings.warn("second of two", UserWarning)


def test_warning_in_fixture(warning_fixture):
    pass


def test_warning_then_fail():
    warnings.warn("warning before a failure", UserWarning)
    assert False


def test_pytest_warns_catches():
    with pytest.warns(UserWarning, match="caught"):
        warnings.warn("caught by pytest.warns", UserWarning)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_filtered_warning():
    warnings.warn("filtered out by filterwarnings", UserWarning)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_same_warning_many_times(n):
    warnings.warn("repeated warning", UserWarning)


def test_no_warning():
    assert True
