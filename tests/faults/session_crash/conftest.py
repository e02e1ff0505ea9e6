"""Kills the worker after its tests: `fault.txt` (written by faults.rs) names the hook
(`pytest_sessionfinish` or `pytest_unconfigure`) and how (`exit`: os._exit(7), `segv`)."""
import os
import signal

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "fault.txt")) as f:
    HOOK, HOW = f.read().split()


def _die():
    if HOW == "exit":
        os._exit(7)
    os.kill(os.getpid(), signal.SIGSEGV)


def pytest_sessionfinish(session):
    if HOOK == "pytest_sessionfinish":
        _die()


def pytest_unconfigure(config):
    if HOOK == "pytest_unconfigure":
        _die()
