"""This module does not compile."""


def test_never_collected(:
    assert True
