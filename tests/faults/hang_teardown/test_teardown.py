"""A session fixture whose teardown hangs: with --hang-timeout each worker is killed in
the teardown of its last test, whose outcome was already reported."""
import time

import pytest


@pytest.fixture(scope="session")
def session_resource():
    yield
    time.sleep(1000)


@pytest.mark.parametrize("n", range(8))
def test_uses_it(session_resource, n):
    pass
