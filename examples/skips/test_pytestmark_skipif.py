"""pytestmark skipif for the whole module (evaluated per test)."""
import pytest

pytestmark = pytest.mark.skipif(True, reason="module pytestmark skipif")


def test_a():
    assert False


def test_b():
    assert False
