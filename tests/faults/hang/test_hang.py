"""test_hang blocks forever inside wait_forever(); with --hang-timeout 2 its worker
is killed and the test reported failed with the Python stack."""
import threading

import pytest


@pytest.mark.parametrize("n", range(6))
def test_ok(n):
    pass


def wait_forever():
    threading.Event().wait()


def test_hang():
    wait_forever()
