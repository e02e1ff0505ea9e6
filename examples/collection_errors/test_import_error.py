"""This module imports something that does not exist."""
import no_such_module_for_xdist_examples  # noqa: F401


def test_never_collected():
    assert True
