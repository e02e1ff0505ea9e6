"""A warning at import time (collection)."""
import warnings

warnings.warn("warning while importing the module", UserWarning)


def test_after_import_warning():
    assert True
