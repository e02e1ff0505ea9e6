"""Drive the Python worker (`crates/xdist-worker/python/`, its parts concatenated) on its own,
the way the Rust controller does (`crates/xdist-worker/src/local.rs`), with no Rust involved.

A worker is `python -u -c <BOOTSTRAP>` with the channel on file descriptors 3 (commands in)
and 4 (events out), named by `XDIST_CHANNEL_FDS=3,4`. Frame 0 is the worker code, frame 1 the
bootstrap JSON; after that both sides exchange JSON arrays. Every frame is a 4-byte
big-endian length and the payload.

The bootstrap program and the worker code (the parts `bootstrap.rs`'s WORKER_PARTS names, in
that order) are read from the repository on every run, so these tests always exercise what the
`xdist` binary embeds.
"""

import json
import os
import re
import select
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER_CODE_DIR = REPO / "crates/xdist-worker/python"
BOOTSTRAP_RS = REPO / "crates/xdist-worker/src/bootstrap.rs"

CHILD_READ_FD = 3
CHILD_WRITE_FD = 4

# Variables of an outer pytest / xdist run that must not leak into the worker under test.
SCRUBBED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_XDIST_AUTO_NUM_WORKERS",
    "XDIST_CHANNEL_FDS",
    "PY_COLORS",
    "FORCE_COLOR",
)


def bootstrap_program():
    """The `-c` program, exactly as `bootstrap.rs` holds it between `r#"` and `"#`."""
    text = BOOTSTRAP_RS.read_text()
    match = re.search(r'BOOTSTRAP: &str = r#"(.*?)"#;', text, re.S)
    assert match, "BOOTSTRAP raw string not found in {}".format(BOOTSTRAP_RS)
    return match.group(1)


def worker_parts():
    """The worker code's parts, in the order `bootstrap.rs`'s WORKER_PARTS concatenates them."""
    text = BOOTSTRAP_RS.read_text()
    match = re.search(r"WORKER_PARTS: \[&str; \d+\] = \[(.*?)\];", text, re.S)
    assert match, "WORKER_PARTS not found in {}".format(BOOTSTRAP_RS)
    return re.findall(r'"([^"]+)"', match.group(1))


def worker_code():
    return "".join((WORKER_CODE_DIR / name).read_text() for name in worker_parts())


def make_bootstrap(suite, basetemp, dist="load", args=None, workerid="gw0", workercount=2,
                   testrunuid="0123456789abcdef", protocol=1, **extra):
    boot = {
        "protocol": protocol,
        "workerinput": {
            "workerid": workerid,
            "workercount": workercount,
            "testrunuid": testrunuid,
            "mainargv": ["xdist", "-n", str(workercount)],
        },
        "args": list(args) if args is not None else ["-p", "no:cacheprovider", str(suite)],
        "basetemp": str(basetemp),
        "dist": dist,
        "color": False,
        "width": 80,
        "want_header": True,
    }
    boot.update(extra)
    return boot


def frame(payload):
    return len(payload).to_bytes(4, "big") + payload


class WorkerError(AssertionError):
    pass


class WorkerProc:
    """One worker process and the controller's side of its channel."""

    def __init__(self, python, cwd, bootstrap, log_dir, env=None):
        self.python = str(python)
        self.log_dir = Path(log_dir)
        self.events = []  # every event received, in order
        self._pending = []  # decoded events not handed out yet
        self._buf = b""
        self._eof = False
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        child_env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        child_env.update(env or {})
        child_env["XDIST_CHANNEL_FDS"] = "{},{}".format(CHILD_READ_FD, CHILD_WRITE_FD)
        child_env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        self._stdout = open(self.log_dir / "worker-stdout.txt", "wb")
        self._stderr = open(self.log_dir / "worker-stderr.txt", "wb")

        def move_channel():
            # In the child: move the channel to fds 3 and 4 (going through high numbers first
            # so neither end clobbers the other). dup2 leaves the copies inheritable.
            hi_r = _dup_high(to_child_r)
            hi_w = _dup_high(from_child_w)
            os.dup2(hi_r, CHILD_READ_FD)
            os.dup2(hi_w, CHILD_WRITE_FD)
            os.close(hi_r)
            os.close(hi_w)

        # Occupy fds 3 and 4 in this process while spawning, so subprocess's own internal
        # pipe (which reports exec errors) cannot be numbered 3 or 4 in the child, where
        # move_channel would overwrite it.
        placeholders = _occupy_low_fds(CHILD_WRITE_FD)
        try:
            self.proc = subprocess.Popen(
                [self.python, "-u", "-c", bootstrap_program()],
                cwd=str(cwd),
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=self._stderr,
                close_fds=False,  # all other fds are non-inheritable (PEP 446)
                preexec_fn=move_channel,
            )
        finally:
            for fd in placeholders:
                os.close(fd)
            os.close(to_child_r)
            os.close(from_child_w)
        self.send_raw(worker_code().encode("utf-8"))
        self.send_raw(json.dumps(bootstrap).encode("utf-8"))

    # -- controller -> worker ---------------------------------------------------------------

    def send_raw(self, payload):
        os.write(self._to_child, frame(payload))

    def send(self, *commands):
        """One frame holding a batch of commands, e.g. `send({"t": "run", "indices": [0]})`."""
        self.send_raw(json.dumps(list(commands)).encode("utf-8"))

    def run(self, *indices):
        self.send({"t": "run", "indices": list(indices)})

    def shutdown(self):
        self.send({"t": "shutdown"})

    def close_channel(self):
        """Closes the command channel, as a controller that went away."""
        if self._to_child is not None:
            os.close(self._to_child)
            self._to_child = None

    # -- worker -> controller ---------------------------------------------------------------

    def _read_frame(self, deadline):
        """Next decoded batch, or None at EOF; raises TimeoutError at the deadline."""
        while True:
            if len(self._buf) >= 4:
                size = int.from_bytes(self._buf[:4], "big")
                if len(self._buf) >= 4 + size:
                    payload, self._buf = self._buf[4:4 + size], self._buf[4 + size:]
                    batch = json.loads(payload)
                    assert isinstance(batch, list), "a frame must hold a JSON array"
                    return batch
            if self._eof:
                if self._buf:
                    raise WorkerError("channel closed inside a frame" + self.describe())
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                raise TimeoutError
            chunk = os.read(self._from_child, 65536)
            if not chunk:
                self._eof = True
            self._buf += chunk

    def _next_event(self, deadline):
        """Next event, or None at EOF; raises TimeoutError at the deadline."""
        while not self._pending:
            batch = self._read_frame(deadline)
            if batch is None:
                return None
            self._pending.extend(batch)
        ev = self._pending.pop(0)
        self.events.append(ev)
        return ev

    def poll(self, timeout):
        """Events that arrive within `timeout` seconds (stops early at EOF)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self._next_event(deadline)
            except TimeoutError:
                return got
            if ev is None:
                return got
            got.append(ev)

    def until(self, kind, timeout=5.0):
        """Events up to and including the next one of type `kind`."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self._next_event(deadline)
            except TimeoutError:
                raise WorkerError(
                    "no {!r} event within {}s; got {}".format(kind, timeout, _kinds(got))
                    + self.describe()
                )
            if ev is None:
                raise WorkerError(
                    "channel closed before a {!r} event; got {}".format(kind, _kinds(got))
                    + self.describe()
                )
            got.append(ev)
            if ev["t"] == kind:
                return got

    def read_to_end(self, timeout=5.0):
        """Every event until the worker closes the channel."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self._next_event(deadline)
            except TimeoutError:
                raise WorkerError(
                    "channel still open after {}s; got {}".format(timeout, _kinds(got))
                    + self.describe()
                )
            if ev is None:
                return got
            got.append(ev)

    def wait(self, timeout=5.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WorkerError("worker still running after {}s".format(timeout) + self.describe())

    def start(self, timeout=5.0):
        """Events up to and including `ready`; returns the `ready` event."""
        return self.until("ready", timeout)[-1]

    def collected(self, timeout=5.0):
        """Events up to and including `collectionfinish`; returns that event."""
        return self.until("collectionfinish", timeout)[-1]

    def stderr_text(self):
        self._stderr.flush()
        return (self.log_dir / "worker-stderr.txt").read_text(errors="replace")

    def describe(self):
        return "\n--- worker stderr ---\n{}\n--- events ---\n{}".format(
            self.stderr_text()[-4000:],
            "\n".join(json.dumps(e)[:400] for e in self.events[-40:]),
        )

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_child = self._from_child = None
        self._stdout.close()
        self._stderr.close()


# As `main` drives the session, without the bootstrap frames: the queue is filled up front.
SESSION_PROGRAM = """
import os, sys
sys.path.insert(0, {dir!r})
import pytest
from _pytest.config import _prepareconfig
import xdist_channel, xdist_session
from xdist_report import make_finish_reporter

r, _ = os.pipe()
channel = xdist_channel.open_channel(os.fdopen(r, "rb"), int(sys.argv[1]))
outbox, queue = xdist_channel.Outbox(channel), xdist_channel.WorkQueue(channel)
queue.handle({{"t": "run", "indices": [0, 1]}})
queue.handle({{"t": "shutdown"}})
workerinput = xdist_session.WorkerInput(workerid="gw0", workercount=1, testrunuid="u")
boot = {{"workerinput": workerinput, "color": False, "width": 80, "want_header": False}}
worker = xdist_session.WorkerPlugin(boot, outbox, queue)
plugins = [worker, worker.fixtures_plugin(), make_finish_reporter(pytest, worker)]
config = _prepareconfig(["-p", "no:xdist"] + sys.argv[2:], plugins=plugins)
config.workerinput, config.workeroutput = workerinput, {{}}
config.hook.pytest_cmdline_main(config=config)
outbox.flush()
"""

def child_env():
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(COLUMNS="80", PYTHONDONTWRITEBYTECODE="1")
    return env


def session_events(python, suite, args):
    """The events of `WorkerPlugin` (`xdist_session.py`, imported on its own) in a real pytest
    session of `args` in `suite`, tests 0 and 1 queued, then `shutdown`."""
    ev_r, ev_w = os.pipe()
    proc = subprocess.Popen(
        [str(python), "-c", SESSION_PROGRAM.format(dir=str(WORKER_CODE_DIR)), str(ev_w)]
        + list(args),
        cwd=str(suite), env=child_env(), pass_fds=(ev_w,), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    os.close(ev_w)
    with os.fdopen(ev_r, "rb") as events_in:
        data = events_in.read()  # until the child exits
    output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 0, output
    events = []
    while data:
        size = int.from_bytes(data[:4], "big")
        events.extend(json.loads(data[4:4 + size]))
        data = data[4 + size:]
    return events


def plain_pytest(python, suite, args):
    """What plain pytest prints for `args` in `suite`, 80 columns, no colour."""
    return subprocess.run(
        [str(python), "-m", "pytest"] + list(args), cwd=str(suite), env=child_env(),
        capture_output=True, text=True, timeout=60,
    ).stdout


def _dup_high(fd, low=10):
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD, low)


def _occupy_low_fds(upto):
    """Opens /dev/null until every fd <= `upto` is in use; returns the fds it opened."""
    opened = []
    while True:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        if fd > upto:
            os.close(fd)
            return opened
        opened.append(fd)


def _kinds(events):
    return [e.get("t") for e in events]


def by_type(events, kind):
    return [e for e in events if e.get("t") == kind]
