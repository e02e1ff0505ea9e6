"""Module-level importorskip of a missing module skips the whole module."""
import pytest

pytest.importorskip("another_missing_module_xdist_example")


def test_never_runs():
    assert False
