"""Tests that write the start of a frame on the worker's event channel (fd 4) and nothing
more: the worker's own frames that follow are read as its body, then nothing comes. Each
must fail its worker like a crash (a protocol error) in bounded time."""
import os
import time

import pytest

CHANNEL = 4


@pytest.mark.parametrize("n", range(4))
def test_ok(n):
    pass


@pytest.mark.parametrize("size", [100, 1 << 20, 60 << 20])
def test_frame_header_only(size):
    os.write(CHANNEL, size.to_bytes(4, "big"))


def test_half_a_header():
    os.write(CHANNEL, b"\x00\x00")
    time.sleep(0.5)
