"""The whole module is skipped at import time."""
import pytest

pytest.skip("module-level skip", allow_module_level=True)


def test_never_runs():
    assert False
