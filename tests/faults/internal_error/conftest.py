"""A hook that raises inside pytest's machinery: INTERNALERROR in the worker."""


def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.endswith("test_two"):
        raise RuntimeError("boom from pytest_runtest_logreport")
