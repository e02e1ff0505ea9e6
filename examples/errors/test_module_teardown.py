"""A module-scoped fixture whose teardown fails: the error is reported on the
last test of the module that used it. One test only, so that the outcome does
not depend on how tests are split between workers (with two tests on two
workers, each worker would tear the fixture down and report an error)."""
import pytest


@pytest.fixture(scope="module")
def module_resource():
    yield "resource"
    raise RuntimeError("module teardown exploded")


def test_uses_resource(module_resource):
    assert module_resource == "resource"
