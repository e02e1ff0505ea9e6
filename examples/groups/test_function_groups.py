import time

import pytest


@pytest.mark.xdist_group("g1")
@pytest.mark.parametrize("i", range(4))
def test_g1(group_check, i):
    time.sleep(0.01)
    assert group_check == "g1"


@pytest.mark.xdist_group(name="g2")
@pytest.mark.parametrize("i", range(4))
def test_g2(group_check, i):
    time.sleep(0.01)
    assert group_check == "g2"


@pytest.mark.xdist_group("g1")
@pytest.mark.xdist_group("g2")
def test_two_marks(group_check):
    # several marks: one combined group "g1_g2"
    assert group_check == "g1_g2"


@pytest.mark.xdist_group("g2")
@pytest.mark.xdist_group("g1")
def test_two_marks_other_order(group_check):
    assert group_check == "g1_g2"


@pytest.mark.parametrize("i", range(6))
def test_ungrouped(i):
    time.sleep(0.01)
