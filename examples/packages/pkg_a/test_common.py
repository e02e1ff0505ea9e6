"""Same basename as pkg_b/test_common.py: fine because both are in packages."""
from pkg_a import helpers


def test_level(level):
    assert level == "pkg_a"


def test_root_fixture_visible(root_only):
    assert root_only == "from root conftest"


def test_package_import():
    assert helpers.double(2) == 4


def test_fails_in_pkg_a():
    assert helpers.double(3) == 7
