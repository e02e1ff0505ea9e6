import logging
import sys

import pytest


@pytest.fixture
def noisy_fixture():
    print("setup stdout from noisy_fixture")
    print("setup stderr from noisy_fixture", file=sys.stderr)
    logging.getLogger("fixture").warning("setup log from noisy_fixture")
    yield "noisy"
    print("teardown stdout from noisy_fixture")
    print("teardown stderr from noisy_fixture", file=sys.stderr)
    logging.getLogger("fixture").warning("teardown log from noisy_fixture")


@pytest.fixture
def noisy_broken_teardown():
    print("setup stdout before a broken teardown")
    yield
    print("teardown stdout before exploding")
    raise RuntimeError("teardown exploded after printing")
