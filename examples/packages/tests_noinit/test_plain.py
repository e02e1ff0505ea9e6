"""A directory without __init__.py (rootdir-relative module, 'prepend' import mode)."""


def test_level(level):
    assert level == "root"
