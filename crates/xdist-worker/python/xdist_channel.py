"""xdist worker, part 1 of 6: the framed channel to the controller, and the state of this process.

The embedded worker program is `xdist_zygote.py` (the fork server), this file,
`xdist_standin.py`, `xdist_steps.py`, `xdist_report.py`, `xdist_session.py` and `xdist_start.py`, concatenated
in that order into one namespace (see `xdist-worker/src/bootstrap.rs` and ARCHITECTURE.md),
sent to the interpreter as the first frame of the channel, so nothing has to be installed
where a worker runs. The bootstrap that
runs it passes two globals: `CHANNEL_IN`, a buffered binary reader of controller frames, and
`CHANNEL_OUT_FD`, the file descriptor to write frames to.

Protocol (see `xdist-core/src/protocol.rs`): every frame is a 4-byte big-endian length and a
JSON payload. The controller sends one bootstrap object, then batches of commands
(`run`, `steal`, `shutdown`, `stop`); the worker sends batches of events.

This part needs no pytest: framing, event batching, the command queue, what travels tagged
(`to_wire`), and the process-wide state every part reads (`WORKER_PID`, `FORKED_COPY`,
`CHANNEL_FDS`, `STACK_DUMP_FILE`, `ZYGOTE`). Imported on its own (the unit tests) it is
complete; `open_channel` sets that state as the worker's `main` does.
"""

import codecs
import collections
import gc  # noqa: F401 (for xdist_zygote.py, which imports nothing itself)
import json
import os
import sys
import threading
import time

PROTOCOL_VERSION = 1
# Our own references: tests patch `time.sleep`/`time.monotonic` (mock, freezegun), and must
# neither slow the worker's threads down nor see their calls.
_sleep = time.sleep
_monotonic = time.monotonic
_perf_counter = time.perf_counter
codecs.register_error(
    "xdist_replacement_char", lambda err: ("\ufffd".encode("utf-8"), err.end)
)
SHUTDOWN = object()
# Like SHUTDOWN for the last test, then wait for `summarize`/`shutdown` (see `linger`).
LINGER = object()
# A batch is flushed when it holds this many events or is this old (seconds), and always
# before the worker waits for work.
BATCH_MAX_EVENTS = 512
BATCH_MAX_AGE = 0.05


class Channel:
    """Framed, thread-safe writer and blocking reader of the controller channel."""

    def __init__(self, reader, write_fd):
        self._reader = reader
        self._fd = write_fd
        self._lock = threading.Lock()
        self._files = self._identities()

    def _identities(self):
        return [(st.st_dev, st.st_ino) for st in
                (os.fstat(self._reader.fileno()), os.fstat(self._fd))]

    def check(self):
        """Ends the worker when a test closed or replaced a channel descriptor (`os.close`,
        `os.dup2` onto it): nothing could be reported or received any more."""
        fds = (("command", self._reader.fileno()), ("event", self._fd))
        for (name, fd), before in zip(fds, self._files):
            try:
                st = os.fstat(fd)
                intact = (st.st_dev, st.st_ino) == before
            except OSError:
                intact = False
            if not intact:
                channel_lost("its {} channel (fd {}) was closed or replaced".format(name, fd))

    def recv(self):
        """Next frame's payload, or None when the controller closed the channel."""
        header = self._reader.read(4)
        if len(header) < 4:
            return None
        size = int.from_bytes(header, "big")
        payload = self._reader.read(size)
        if len(payload) < size:
            return None
        return payload

    def send(self, payload):
        if FORKED_COPY or os.getpid() != WORKER_PID:
            # A fork's copy of our buffers: never on the worker's channel.
            return
        data = len(payload).to_bytes(4, "big") + payload
        with self._lock:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._fd, view)
                except BrokenPipeError:
                    # The controller is gone: nobody will read our results.
                    os._exit(3)
                except OSError as exc:
                    channel_lost("cannot write the event channel ({})".format(exc))
                view = view[written:]

    def send_events(self, events):
        data = _encode_events(events)
        if len(data) <= EVENT_BUDGET:
            self.send(data)
            return
        # Event by event (in order), each within the budget, as few frames as that allows.
        frame = []
        size = 0
        for event in events:
            part = _fitted(event, _encode_events([event]))[1:-1]
            if frame and size + len(part) > EVENT_BUDGET:
                self.send(b"[" + b",".join(frame) + b"]")
                frame, size = [], 0
            frame.append(part)
            size += len(part) + 1
        self.send(b"[" + b",".join(frame) + b"]")


def _encode_events(events):
    text = json.dumps(events, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (from undecodable bytes) become U+FFFD, as pytest prints them,
        # rather than escapes that strict JSON parsers reject.
        return text.encode("utf-8", "xdist_replacement_char")


# The controller refuses frames over 64 MiB (xdist-core's MAX_FRAME_LEN) and keeps failed
# reports until the summary: a report, warning or log over EVENT_BUDGET bytes has its longest
# texts cut in the middle, visibly, rather than its test turned into a crash.
EVENT_BUDGET = 16 * 1024 * 1024
FITTED_EVENTS = ("report", "collectreport", "warning", "log", "internal_error", "summary")
# Fields that hold JSON text (whole serialized reports): cut inside, so they stay JSON.
JSON_TEXT_FIELDS = ("ser", "sw", "rl")


def _fitted(event, data):
    """`event` encoded within EVENT_BUDGET (events other than FITTED_EVENTS as they are)."""
    if not isinstance(event, dict) or event.get("t") not in FITTED_EVENTS:
        return data
    limit = EVENT_BUDGET // 4
    while len(data) > EVENT_BUDGET and limit >= 256:
        data = _encode_events([_cut_texts(event, limit)])
        limit //= 4
    return data


def _cut_texts(value, limit, key=None):
    """`value` with every text (and list) longer than `limit` cut in the middle."""
    if isinstance(value, str):
        if key in JSON_TEXT_FIELDS:
            try:
                return json.dumps(_cut_texts(json.loads(value), limit))
            except ValueError:
                pass
        if len(value) <= limit:
            return value
        half = limit // 2
        cut = len(value) - 2 * half
        return "{}\n[xdist: {} characters cut here; a report travels from its worker in at " \
            "most {} MiB]\n{}".format(value[:half], cut, EVENT_BUDGET >> 20, value[-half:])
    if isinstance(value, dict):
        return {k: _cut_texts(v, limit, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_cut_texts(v, limit) for v in value]
        if (
            len(items) > 2
            and all(isinstance(v, str) for v in items)
            and sum(_rough_size(v) for v in items) > limit
        ):
            # Many short lines (a long traceback): keep the first and last ones.
            head, tail, size = [], [], 0
            for i in range(len(items) // 2):
                size += _rough_size(items[i]) + _rough_size(items[-1 - i])
                if size > limit:
                    break
                head.append(items[i])
                tail.append(items[-1 - i])
            cut = len(items) - len(head) - len(tail)
            items = head + ["[xdist: {} entries cut here]".format(cut)] + tail[::-1]
        return items
    return value


def _rough_size(value):
    if isinstance(value, str):
        return len(value) + 3
    if isinstance(value, dict):
        return sum(len(k) + _rough_size(v) for k, v in value.items()) + 2
    if isinstance(value, (list, tuple)):
        return sum(_rough_size(v) for v in value) + 2
    return 8


class Outbox:
    """Batches events for the channel.

    The main thread emits; a daemon thread flushes whatever has waited longer than
    BATCH_MAX_AGE, so a long or hung test never holds back the events before it.
    """

    def __init__(self, channel):
        self.channel = channel
        self.events = []
        self.oldest = 0.0
        self.lock = threading.Lock()

    def emit(self, event):
        if FORKED_COPY:
            # A fork (multiprocessing's child logging under log_cli...) reports nothing.
            return
        with self.lock:
            if not self.events:
                self.oldest = _monotonic()
            self.events.append(event)
            if len(self.events) < BATCH_MAX_EVENTS:
                return
            events, self.events = self.events, []
        self.channel.send_events(events)

    def flush(self):
        with self.lock:
            events, self.events = self.events, []
        if events:
            self.channel.send_events(events)

    def flush_stale(self):
        with self.lock:
            if not self.events or _monotonic() - self.oldest < BATCH_MAX_AGE:
                return
            events, self.events = self.events, []
        self.channel.send_events(events)

    def start_flusher(self):
        def loop():
            while True:
                _sleep(BATCH_MAX_AGE)
                self.flush_stale()

        threading.Thread(target=loop, name="xdist-flush", daemon=True).start()


class WorkQueue:
    """Test indices to run, fed by the channel reader thread."""

    def __init__(self, channel):
        self.channel = channel
        self.items = collections.deque()
        self.cond = threading.Condition()

    def pop(self, before_wait):
        """Next index or SHUTDOWN; calls `before_wait()` (a flush) before blocking."""
        if FORKED_COPY:
            leave_forked_copy(0)
        with self.cond:
            if self.items:
                return self.items.popleft()
        before_wait()
        with self.cond:
            while not self.items:
                self.cond.wait()
            return self.items.popleft()

    def handle(self, command):
        kind = command.get("t")
        if kind == "dump_stacks":
            dump_stacks()
            return
        with self.cond:
            if kind == "run":
                self.items.extend(command["indices"])
            elif kind == "shutdown":
                self.items.append(SHUTDOWN)
            elif kind == "stop":
                self.items.clear()
                self.items.append(SHUTDOWN)
            elif kind == "steal":
                self._steal(command["indices"])
            elif kind == "linger":
                self.items.append(LINGER)
            elif kind == "summarize":
                self.items.append(command)
            self.cond.notify()

    def _steal(self, indices):
        # All or nothing: a partial steal could split what the scheduler keeps together.
        wanted = set(indices)
        queued = [x for x in self.items if isinstance(x, int)]
        if wanted and wanted.issubset(queued):
            self.items = collections.deque(
                x for x in self.items if not (isinstance(x, int) and x in wanted)
            )
            given = list(indices)
        else:
            given = []
        self.channel.send_events([{"t": "unscheduled", "indices": given}])

    def read_commands(self):
        """Reader thread body: decode command batches until the channel closes."""
        while True:
            try:
                payload = self.channel.recv()
            except (OSError, ValueError) as exc:
                channel_lost("cannot read the command channel ({}: {})".format(
                    type(exc).__name__, exc))
            if payload is None:
                break
            for command in json.loads(payload):
                self.handle(command)
        # The controller is gone: stop after the running test, and make sure a hung test
        # cannot keep this process alive forever.
        self.handle({"t": "stop"})
        timer = threading.Timer(10.0, os._exit, args=(3,))
        timer.daemon = True
        timer.start()


def channel_lost(what):
    """The channel to the controller is broken inside this process (a test or plugin closed
    or replaced its descriptors): say so on the real stderr and exit, a crash of the
    running test."""
    out = STACK_DUMP_FILE if STACK_DUMP_FILE is not None else sys.stderr
    try:
        out.write("xdist worker: channel lost: {}; a test or plugin must not touch "
                  "the worker's channel\n".format(what))
        out.flush()
    finally:
        os._exit(3)


def dump_stacks():
    """Every thread's Python stack, on the real stderr (as on SIGUSR1)."""
    import faulthandler

    out = STACK_DUMP_FILE if STACK_DUMP_FILE is not None else sys.stderr
    faulthandler.dump_traceback(file=out, all_threads=True)
    out.flush()


STACK_DUMP_FILE = None
# The worker's own pid (set by `main`), and whether this process is a copy of it made by
# `os.fork()` in a test (multiprocessing's fork children, a test's own `fork()`).
WORKER_PID = None
FORKED_COPY = False


def open_channel(channel_in, channel_out_fd):
    """The worker's channel: this process (`WORKER_PID`) owns it, a fork of it does not."""
    global CHANNEL_FDS, WORKER_PID
    CHANNEL_FDS = (channel_in.fileno(), channel_out_fd)
    WORKER_PID = os.getpid()
    os.register_at_fork(after_in_child=_after_fork_in_child)
    return Channel(channel_in, channel_out_fd)


def watch_stacks():
    """Python stacks of every thread on SIGUSR1: the controller asks before killing a hung
    worker. Written to a dup of the real stderr (`STACK_DUMP_FILE`): pytest's capturing
    redirects fd 2 while a test runs."""
    import faulthandler
    import signal

    global STACK_DUMP_FILE
    STACK_DUMP_FILE = os.fdopen(os.dup(2), "w")
    faulthandler.register(signal.SIGUSR1, file=STACK_DUMP_FILE, all_threads=True)


def _after_fork_in_child():
    """A fork of the worker: the channel is not this process's. Its descriptors are
    pointed at /dev/null (the numbers stay taken, so nothing else is closed through them
    later), nothing it emits is sent, and `leave_forked_copy` ends the copy if it comes back
    into pytest's test loop."""
    global FORKED_COPY
    if ZYGOTE is not None and getattr(ZYGOTE, "forking", False):
        return
    FORKED_COPY = True
    fds = [int(fd) for fd in CHANNEL_FDS]
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in fds:
            os.dup2(null, fd, inheritable=False)
        os.close(null)
    except OSError:
        pass


def leave_forked_copy(status):
    """A forked child of a test returned into pytest (it did not end with `os._exit`): its
    reports would mix with the worker's and it would wait for work forever, outliving the
    run. It ends here, as its own pytest session would have after this test."""
    try:
        out = STACK_DUMP_FILE if STACK_DUMP_FILE is not None else sys.stderr
        out.write("xdist worker: process {} (forked by a test) returned into pytest and "
                  "exits; end forked children with os._exit()\n".format(os.getpid()))
        out.flush()
    finally:
        os._exit(status)


CHANNEL_FDS = ()

# The fork server of this run when this process is one (see `Zygote`), else None.
ZYGOTE = None


def _json_clean(data):
    """pytest-reportlog's `cleanup_unserializable`: values JSON cannot hold become str()."""
    try:
        json.dumps(data)
        return data
    except (TypeError, ValueError):
        pass
    result = {}
    for k, v in data.items():
        try:
            json.dumps({k: v})
        except (TypeError, ValueError):
            v = str(v)
        result[k] = v
    return result


def _jsonable(value):
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


# `workerinput`/`workeroutput` values JSON cannot hold but execnet (pytest-xdist's channel)
# carries, tagged on the wire: syrupy's worker report is zlib-compressed bytes.
WIRE_BYTES = "__xdist_bytes__"
WIRE_SET = "__xdist_set__"


def to_wire(value):
    import base64

    if isinstance(value, (bytes, bytearray)):
        return {WIRE_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (set, frozenset)):
        return {WIRE_SET: [to_wire(v) for v in value]}
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


def from_wire(value):
    import base64

    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(WIRE_BYTES), str):
            return base64.b64decode(value[WIRE_BYTES])
        if len(value) == 1 and isinstance(value.get(WIRE_SET), list):
            # JSON made the members' tuples lists: tuples again, so they hash.
            members = (from_wire(v) for v in value[WIRE_SET])
            return {tuple(m) if isinstance(m, list) else m for m in members}
        return {k: from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


def wire_dict(mapping):
    """The entries of `mapping` the channel can carry, tagged (see `to_wire`)."""
    wired = ((k, to_wire(v)) for k, v in mapping.items())
    return {k: v for k, v in wired if _jsonable(v)}
