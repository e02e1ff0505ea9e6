import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("fixture setup exploded")


@pytest.fixture
def broken_teardown():
    yield 42
    raise RuntimeError("fixture teardown exploded")
