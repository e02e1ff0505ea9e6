"""Members of g1 and g2 in another module: groups span modules."""
import pytest


@pytest.mark.xdist_group("g1")
def test_g1_elsewhere(group_check):
    assert group_check == "g1"


@pytest.mark.xdist_group("g2")
def test_g2_elsewhere(group_check):
    assert group_check == "g2"


def test_plain():
    pass
