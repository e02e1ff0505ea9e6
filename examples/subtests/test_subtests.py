"""pytest 9's built-in `subtests` fixture: passing and failing subtests."""
import pytest


def test_all_subtests_pass(subtests):
    for i in range(3):
        with subtests.test(msg="even check", i=i * 2):
            assert (i * 2) % 2 == 0


def test_some_subtests_fail(subtests):
    for i in range(4):
        with subtests.test(i=i):
            assert i % 2 == 0, f"{i} is odd"


def test_subtest_fails_and_test_passes_after(subtests):
    with subtests.test(msg="failing block"):
        assert 1 == 2
    with subtests.test(msg="passing block"):
        assert 1 == 1


def test_subtest_skip(subtests):
    with subtests.test(msg="skipped block"):
        pytest.skip("skip inside a subtest")
    with subtests.test(msg="after skip"):
        assert True


def test_no_subtests():
    assert True
