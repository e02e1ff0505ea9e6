"""Parametrize ids that differ from one process to the next, as in marshmallow's suite
(`datetime.now()`) and arrow's (a set, whose order follows the per-process string hash
seed): every process that collects gets other node ids. Serial pytest and fork mode
(one collection) pass; spawned workers, each collecting, stop with pytest-xdist's
"Different tests were collected" error."""
import datetime
import random

import pytest

NOW = datetime.datetime.now()
UNITS = {"second", "minute", "hour", "day", "week", "month", "quarter", "year"}


@pytest.mark.parametrize("moment", [NOW, NOW + datetime.timedelta(days=1)], ids=str)
def test_timestamps(moment):
    assert moment >= NOW


@pytest.mark.parametrize("seed", [random.random() for _ in range(3)])
def test_random_values(seed):
    assert 0.0 <= seed < 1.0


@pytest.mark.parametrize("unit", UNITS)
def test_set_order(unit):
    assert unit in UNITS
