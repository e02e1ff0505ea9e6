"""Setup errors, teardown errors, missing fixture, fail + teardown error."""
import pytest


def test_pass():
    assert True


def test_setup_error(broken_setup):
    pass


def test_teardown_error(broken_teardown):
    assert broken_teardown == 42


def test_fail_and_teardown_error(broken_teardown):
    assert broken_teardown == 43


def test_missing_fixture(no_such_fixture):
    pass


@pytest.fixture
def fixture_with_bad_dependency(also_missing):
    return 1


def test_missing_transitive_fixture(fixture_with_bad_dependency):
    pass


class TestClassSetupError:
    @classmethod
    def setup_class(cls):
        raise RuntimeError("setup_class exploded")

    def test_one(self):
        pass

    def test_two(self):
        pass


class TestMethodTeardownError:
    def teardown_method(self, method):
        raise RuntimeError("teardown_method exploded")

    def test_method(self):
        pass


def test_after_errors_passes():
    assert True
