import os


def test_worker_count_is_set_under_xdist():
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    assert count is None or int(count) >= 1


def test_one():
    assert 1 + 1 == 2


def test_two():
    assert "ab" * 2 == "abab"
