import time

import pytest

pytestmark = pytest.mark.xdist_group("mod")


@pytest.mark.parametrize("i", range(5))
def test_module_member(group_check, i):
    time.sleep(0.01)
    assert group_check == "mod"


@pytest.mark.xdist_group("g1")
def test_module_and_function_mark(group_check):
    # module mark "mod" plus function mark "g1" -> group "g1_mod"
    assert group_check == "g1_mod"
