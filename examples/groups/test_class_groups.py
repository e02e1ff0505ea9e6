import time

import pytest


@pytest.mark.xdist_group("cls")
class TestGroupedClass:
    def test_a(self, group_check):
        assert group_check == "cls"

    def test_b(self, group_check):
        time.sleep(0.01)
        assert group_check == "cls"

    @pytest.mark.parametrize("i", range(3))
    def test_c(self, group_check, i):
        assert group_check == "cls"


class TestUngroupedClass:
    def test_x(self):
        time.sleep(0.01)

    def test_y(self):
        time.sleep(0.01)
