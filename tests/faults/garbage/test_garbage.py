"""Tests that write junk on the worker's protocol channel (fd 4, the write end the
controller reads; see CHILD_WRITE_FD in crates/xdist-worker/src/local.rs). Each must
fail its worker like a crash with a `protocol error`; the other tests pass."""
import os
import time

import pytest

CHANNEL = 4


def _send_and_wait(data):
    os.write(CHANNEL, data)
    # The controller kills us for it; never finish on our own.
    time.sleep(30)


@pytest.mark.parametrize("n", range(6))
def test_ok(n):
    pass


def test_oversized_header():
    # "garb" read as a big-endian length is ~1.7 GB: over the frame limit.
    _send_and_wait(b"garbage on the channel\n")


def test_not_json():
    _send_and_wait(b"\x00\x00\x00\x05hello")


def test_unknown_message():
    payload = b'[{"t":"no-such-event","x":1}]'
    _send_and_wait(len(payload).to_bytes(4, "big") + payload)


def test_truncated_frame():
    # A header promising 100 bytes, 3 of them, then the process ends.
    os.write(CHANNEL, b"\x00\x00\x00\x64abc")
    os._exit(0)
