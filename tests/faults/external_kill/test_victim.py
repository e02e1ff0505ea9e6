"""test_victim writes its worker's pid to victim.pid and waits to be killed from
outside (faults.rs sends SIGKILL); the other tests pass."""
import os
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("n", range(6))
def test_ok(n):
    pass


def test_victim():
    tmp = os.path.join(HERE, "victim.pid.tmp")
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, os.path.join(HERE, "victim.pid"))
    time.sleep(30)
