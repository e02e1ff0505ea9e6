import time

import pytest


@pytest.fixture(scope="module")
def inventory():
    time.sleep(0.05)
    return {"apples": 3, "pears": 0, "plums": 7}


@pytest.mark.parametrize("fruit", ["apples", "pears", "plums"])
def test_known_fruit(inventory, fruit):
    assert fruit in inventory


def test_total(inventory):
    assert sum(inventory.values()) == 10


def test_no_negative(inventory):
    assert all(v >= 0 for v in inventory.values())


def test_dict_diff(inventory):
    assert inventory == {"apples": 3, "pears": 1, "plums": 7}  # fails: dict diff


@pytest.mark.parametrize("i", range(6))
def test_slow_io(i, tmp_path):
    time.sleep(0.05)
    (tmp_path / f"f{i}.txt").write_text(str(i))
    assert (tmp_path / f"f{i}.txt").read_text() == str(i)
