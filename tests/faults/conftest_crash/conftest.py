"""Kills worker gw1 while its conftests are imported; every other worker is fine."""
import os

if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":
    os._exit(1)
