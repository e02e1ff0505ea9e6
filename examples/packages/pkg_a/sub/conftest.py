import pytest


@pytest.fixture
def level(level):
    # overrides and extends the parent's fixture of the same name
    return level + "/sub"
