import pytest


@pytest.fixture
def level():
    return "root"


@pytest.fixture
def root_only():
    return "from root conftest"
