import pytest


@pytest.fixture
def level():
    return "pkg_a"
