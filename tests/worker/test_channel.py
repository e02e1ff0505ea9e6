"""`xdist_channel.py` on its own: framing, batching, the command queue and the wire tags, over
real pipes (and a real fork for a fork's copy of the worker)."""

import json
import os
import subprocess
import sys
import time

import pytest

import xdist_channel
from workerproc import WORKER_CODE_DIR, frame


@pytest.fixture
def pipes():
    """`(channel, read end of its events, write end of its commands)`, this process owning
    the channel as a worker's `main` makes it (`open_channel`)."""
    cmd_r, cmd_w = os.pipe()
    ev_r, ev_w = os.pipe()
    reader = os.fdopen(cmd_r, "rb")
    saved = xdist_channel.WORKER_PID, xdist_channel.CHANNEL_FDS
    channel = xdist_channel.open_channel(reader, ev_w)
    yield channel, ev_r, cmd_w
    xdist_channel.WORKER_PID, xdist_channel.CHANNEL_FDS = saved
    reader.close()
    for fd in (ev_r, ev_w, cmd_w):
        try:
            os.close(fd)
        except OSError:
            pass


def read_frames(fd, count):
    """`count` decoded frames from the pipe `fd` (5 s at most)."""
    os.set_blocking(fd, False)
    buf, frames, deadline = b"", [], time.monotonic() + 5
    while len(frames) < count:
        assert time.monotonic() < deadline, "only {} of {} frames".format(len(frames), count)
        try:
            buf += os.read(fd, 1 << 20)
        except BlockingIOError:
            time.sleep(0.01)
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            size = int.from_bytes(buf[:4], "big")
            frames.append(json.loads(buf[4:4 + size]))
            buf = buf[4 + size:]
    return frames


def test_frames_each_way(pipes):
    channel, ev_r, cmd_w = pipes
    os.write(cmd_w, frame(b'[{"t":"run","indices":[1]}]') + frame(b""))
    assert channel.recv() == b'[{"t":"run","indices":[1]}]'
    assert channel.recv() == b""
    os.close(cmd_w)
    assert channel.recv() is None  # the controller closed the channel
    channel.send_events([{"t": "done", "i": 0, "text": "caf\u00e9"}])
    assert read_frames(ev_r, 1) == [[{"t": "done", "i": 0, "text": "caf\u00e9"}]]


def test_lone_surrogates_become_replacement_chars(pipes):
    channel, ev_r, _ = pipes
    channel.send_events([{"t": "log", "text": b"bad \xff".decode("utf-8", "surrogateescape")}])
    assert read_frames(ev_r, 1) == [[{"t": "log", "text": "bad \ufffd"}]]


def test_outbox_batches_until_full_or_flushed(pipes, monkeypatch):
    channel, ev_r, _ = pipes
    monkeypatch.setattr(xdist_channel, "BATCH_MAX_EVENTS", 3)
    outbox = xdist_channel.Outbox(channel)
    outbox.emit({"t": "a"})
    outbox.emit({"t": "b"})
    outbox.emit({"t": "c"})  # the third fills the batch: sent
    outbox.emit({"t": "d"})
    outbox.flush()
    assert read_frames(ev_r, 2) == [[{"t": "a"}, {"t": "b"}, {"t": "c"}], [{"t": "d"}]]


def test_outbox_flusher_sends_what_waited(pipes):
    channel, ev_r, _ = pipes
    outbox = xdist_channel.Outbox(channel)
    outbox.start_flusher()
    outbox.emit({"t": "logstart", "i": 0})  # nobody flushes: the flusher thread does
    assert read_frames(ev_r, 1) == [[{"t": "logstart", "i": 0}]]


def test_oversized_report_is_cut_not_dropped(pipes, monkeypatch):
    channel, ev_r, _ = pipes
    monkeypatch.setattr(xdist_channel, "EVENT_BUDGET", 4096)
    ser = json.dumps({"longrepr": "x" * 10000})
    channel.send_events([{"t": "done", "i": 0}, {"t": "report", "text": "y" * 10000, "ser": ser}])
    (batch,) = read_frames(ev_r, 1)
    assert batch[0] == {"t": "done", "i": 0}
    assert "characters cut here" in batch[1]["text"] and len(batch[1]["text"]) < 4096
    assert "characters cut here" in json.loads(batch[1]["ser"])["longrepr"]  # still JSON


def test_steal_is_all_or_nothing(pipes):
    channel, ev_r, _ = pipes
    queue = xdist_channel.WorkQueue(channel)
    queue.handle({"t": "run", "indices": [0, 1, 2, 3]})
    queue.handle({"t": "steal", "indices": [2, 3]})
    queue.handle({"t": "steal", "indices": [1, 9]})  # 9 is not queued: nothing is given
    assert read_frames(ev_r, 2) == [[{"t": "unscheduled", "indices": [2, 3]}],
                                    [{"t": "unscheduled", "indices": []}]]
    queue.handle({"t": "shutdown"})
    got = [queue.pop(lambda: None) for _ in range(3)]
    assert got == [0, 1, xdist_channel.SHUTDOWN]


def test_stop_drops_the_queue(pipes):
    channel, _, _ = pipes
    queue = xdist_channel.WorkQueue(channel)
    queue.handle({"t": "run", "indices": [0, 1]})
    queue.handle({"t": "stop"})
    assert queue.pop(lambda: None) is xdist_channel.SHUTDOWN


def test_a_forks_copy_sends_nothing(pipes):
    """A test's `os.fork()`: the child's sends never reach the worker's channel."""
    channel, ev_r, _ = pipes
    pid = os.fork()
    if pid == 0:
        code = 0 if xdist_channel.FORKED_COPY else 1
        channel.send_events([{"t": "from_the_fork"}])
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the fork hook did not mark the copy"
    channel.send_events([{"t": "from_the_worker"}])
    assert read_frames(ev_r, 1) == [[{"t": "from_the_worker"}]]


def test_a_replaced_channel_fd_ends_the_process():
    """A test that `dup2`s over the event channel: one line on stderr, exit 3."""
    script = (
        "import os, sys\n"
        "sys.path.insert(0, {dir!r})\n"
        "import xdist_channel\n"
        "r, w = os.pipe()\n"
        "ch = xdist_channel.open_channel(os.fdopen(r, 'rb'), w)\n"
        "ch.check()\n"
        "os.dup2(os.open(os.devnull, os.O_WRONLY), w)\n"
        "ch.check()\n"
        "sys.exit(0)\n"
    ).format(dir=str(WORKER_CODE_DIR))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert "channel lost: its event channel (fd" in proc.stderr


def test_wire_tags_decode_back():
    """`from_wire` undoes `to_wire` (sets of tuples included: JSON makes tuples lists)."""
    value = {"b": b"\x00z", "s": {("a", 1), "b"}, "l": [b"x", {"k": {1}}]}
    wired = json.loads(json.dumps(xdist_channel.to_wire(value)))
    assert xdist_channel.from_wire(wired) == value
    assert xdist_channel.wire_dict({"ok": b"\x00", "no": object()}) == {
        "ok": {"__xdist_bytes__": "AA=="}
    }
