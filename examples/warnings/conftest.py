import warnings

import pytest


@pytest.fixture
def warning_fixture():
    warnings.warn("warning raised in fixture setup", UserWarning)
    yield
    warnings.warn("warning raised in fixture teardown", UserWarning)
