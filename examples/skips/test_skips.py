"""skip marker, skipif, runtime skip, importorskip, skip in a fixture."""
import sys

import pytest


@pytest.mark.skip(reason="skipped by marker")
def test_skip_marker():
    assert False


@pytest.mark.skipif(sys.version_info > (3,), reason="skipif true on python 3")
def test_skipif_true():
    assert False


@pytest.mark.skipif(sys.version_info < (3,), reason="never on python 3")
def test_skipif_false_runs():
    assert True


def test_skip_runtime():
    pytest.skip("skipped at runtime")


def test_importorskip_missing():
    pytest.importorskip("no_such_module_xdist_example")


def test_importorskip_present():
    json = pytest.importorskip("json")
    assert json.dumps(1) == "1"


@pytest.fixture
def skipping_fixture():
    pytest.skip("skipped in a fixture")


def test_skip_from_fixture(skipping_fixture):
    assert False


@pytest.mark.parametrize("n", [1, 2, 3])
def test_skip_some_params(n):
    if n == 2:
        pytest.skip("n == 2 is skipped")
    assert n


def test_pass():
    assert True
