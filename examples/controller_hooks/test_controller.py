import os

import pytest


def test_environment_from_the_controller():
    assert os.environ.get("SHARED_MARK") == "set-on-the-controller"


def test_workerinput_from_configure_node(request):
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is not None:
        assert workerinput["shared_token"] == "token-for-" + workerinput["workerid"]


@pytest.mark.parametrize("n", range(6))
def test_more(n):
    assert n != 4
