"""xdist worker: one pytest session driven by the xdist controller over a framed channel.

This file is embedded in the `xdist` binary and sent to the interpreter as the first frame
of the channel, so nothing has to be installed where a worker runs. The bootstrap that runs
it (see `xdist-worker/src/bootstrap.rs`) passes two globals: `CHANNEL_IN`, a buffered binary
reader of controller frames, and `CHANNEL_OUT_FD`, the file descriptor to write frames to.

Protocol (see `xdist-core/src/protocol.rs`): every frame is a 4-byte big-endian length and a
JSON payload. The controller sends one bootstrap object, then batches of commands
(`run`, `steal`, `shutdown`, `stop`); the worker sends batches of events.

The worker does everything that needs pytest objects: it asks pytest's own hooks for each
report's status letter and word and renders tracebacks, location lines and short-summary
lines, so the Rust controller prints exactly what pytest would.
"""

import codecs
import collections
import gc
import io
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


class HeapFreezer:
    """Keeps Python's cyclic garbage collector off the collected tests where no test can tell.

    Collecting 5,000 tests builds a heap that every full collection walks again: during
    collection, and twice more when pytest unconfigures (its unraisable-exception check), about
    0.1 s a worker on the bench's trivial suite, while the controller waits. So:
    - while collecting, each collector's objects are frozen once reported (`gc.freeze()` is
      O(1)); young garbage is still collected;
    - before the first test everything is unfrozen: tests see the ordinary collector
      (`gc.get_objects()`, `gc.get_referrers()`, finalizers of garbage cycles);
    - once `finished` is sent, everything is frozen again: pytest's unconfigure then skips
      walking the heap for cyclic garbage whose finalizers could no longer reach any report
      (the process ends with `os._exit`, which runs no finalizer either).
    A project that freezes objects itself is left alone while collecting.
    """

    def __init__(self):
        self.collecting = False
        # CPython's; PyPy's gc module has no freeze.
        self.available = all(hasattr(gc, f) for f in ("freeze", "unfreeze", "get_freeze_count"))

    def session_started(self):
        self.collecting = self.available and gc.isenabled() and gc.get_freeze_count() == 0

    def collected(self):
        if self.collecting:
            gc.freeze()

    def run_starts(self):
        if self.collecting:
            self.collecting = False
            gc.unfreeze()

    def session_reported(self):
        if self.available:
            gc.freeze()


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


def _node_id_class():
    """pytest >= 9.2's structured node id class (`_locationline` takes it), else None;
    looked up once, after the session imported pytest."""
    global _NODE_ID
    if _NODE_ID is False:
        try:
            from _pytest.nodeid import NodeId as _NODE_ID
        except ImportError:
            _NODE_ID = None
    return _NODE_ID


_NODE_ID = False


class NullFile(io.TextIOBase):
    """Sink for the worker's own terminal reporter: the controller prints instead."""

    def write(self, s):
        return len(s)

    def isatty(self):
        return False


# ---------------------------------------------------------------------------------------
# The `xdist` module stand-in: importable in tests and conftests when pytest-xdist is not
# installed (when it is, the real package wins: this finder comes last on sys.meta_path).

XDIST_STANDIN = '''
"""xdist's worker-side API, provided by the xdist binary (pytest-xdist compatible)."""
__version__ = "3.8.0"
__all__ = ["__version__", "is_xdist_worker", "is_xdist_controller", "is_xdist_master",
           "get_xdist_worker_id"]

def _config(request_or_session):
    return request_or_session.config

def is_xdist_worker(request_or_session):
    return hasattr(_config(request_or_session), "workerinput")

def is_xdist_controller(request_or_session):
    config = _config(request_or_session)
    return not is_xdist_worker(request_or_session) and getattr(
        config.option, "dist", "no") not in (None, "no")

is_xdist_master = is_xdist_controller

def get_xdist_worker_id(request_or_session):
    if hasattr(_config(request_or_session), "workerinput"):
        return _config(request_or_session).workerinput["workerid"]
    return "master"
'''

NEWHOOKS_STANDIN = '''
"""xdist hook specifications, so conftest files implementing them load."""
import pytest

@pytest.hookspec()
def pytest_xdist_setupnodes(config, specs):
    """Called before any remote node is set up."""

@pytest.hookspec()
def pytest_xdist_newgateway(gateway):
    """Called on new raw gateway creation."""

@pytest.hookspec(warn_on_impl=DeprecationWarning(
    "rsync feature is deprecated and will be removed in pytest-xdist 4.0"))
def pytest_xdist_rsyncstart(source, gateways):
    """Called before rsyncing a directory to remote gateways takes place."""

@pytest.hookspec(warn_on_impl=DeprecationWarning(
    "rsync feature is deprecated and will be removed in pytest-xdist 4.0"))
def pytest_xdist_rsyncfinish(source, gateways):
    """Called after rsyncing a directory to remote gateways takes place."""

@pytest.hookspec(firstresult=True)
def pytest_xdist_getremotemodule():
    """Called when creating remote node."""

@pytest.hookspec()
def pytest_configure_node(node):
    """Configure node information before it gets instantiated."""

@pytest.hookspec()
def pytest_testnodeready(node):
    """Test Node is ready to operate."""

@pytest.hookspec()
def pytest_testnodedown(node, error):
    """Test Node is down."""

@pytest.hookspec()
def pytest_xdist_node_collection_finished(node, ids):
    """Called by the controller node when a worker node finishes collecting."""

@pytest.hookspec(firstresult=True)
def pytest_xdist_make_scheduler(config, log):
    """Return a node scheduler implementation."""

@pytest.hookspec(firstresult=True)
def pytest_xdist_auto_num_workers(config):
    """Return the number of workers to spawn for --numprocesses=auto."""

@pytest.hookspec(firstresult=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """Handle a crashitem, modifying the report if necessary."""
'''


class StandinFinder:
    """Serves `xdist` and `xdist.newhooks` from the sources above."""

    SOURCES = {"xdist": XDIST_STANDIN, "xdist.newhooks": NEWHOOKS_STANDIN}

    def find_spec(self, name, path=None, target=None):
        if name not in self.SOURCES:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(
            name, self, is_package=(name == "xdist")
        )

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ == "xdist":
            module.__path__ = []
        exec(compile(self.SOURCES[module.__name__], "<xdist>", "exec"), module.__dict__)


# ---------------------------------------------------------------------------------------


def fatal(outbox, kind, message, exitstatus=None):
    outbox.emit({"t": "fatal", "kind": kind, "message": message, "exitstatus": exitstatus})
    outbox.flush()


class WorkerInput(dict):
    """`config.workerinput`, remembering the keys asked for that it lacks: what a plugin's
    `pytest_configure_node` would have added on pytest-xdist's controller."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.missing = set()

    def __missing__(self, key):
        self.missing.add(key)
        raise KeyError(key)


class XdistOptions:
    """What pytest-xdist registers in any pytest process: its hook specs, its options (so
    `-n`/`--dist` in addopts or PYTEST_ADDOPTS still parse) and the `xdist_group` marker.

    `numprocesses` is the `-n` default: the worker count, as a pytest-xdist worker sees it.
    Plugins that decide at startup whether the run is distributed (pytest-cov) must see that
    it is.
    """

    def __init__(self, numprocesses, name=None):
        self.numprocesses = numprocesses
        if name:
            # pluggy registers a plugin under its `__name__`: as "xdist", `hasplugin("xdist")`
            # is true and an installed pytest-xdist's entry point (same name) is skipped.
            self.__name__ = name

    def pytest_addhooks(self, pluginmanager):
        # Our own copy of the specs: importing an installed pytest-xdist this early would
        # defeat pytest's assertion rewriting of it.
        import types

        specs = types.ModuleType("xdist_hookspecs")
        exec(compile(NEWHOOKS_STANDIN, "<xdist-hookspecs>", "exec"), specs.__dict__)
        pluginmanager.add_hookspecs(specs)
        if getattr(self, "__name__", None) != "xdist":
            # A worker keeps pytest-xdist out (`-p no:xdist`); a user's `-p xdist` (with
            # PYTEST_DISABLE_PLUGIN_AUTOLOAD) asks for what this process already provides.
            consider = pluginmanager.consider_pluginarg

            def consider_pluginarg(arg):
                if arg.strip() not in ("xdist", "xdist.plugin", "xdist.looponfail"):
                    consider(arg)

            pluginmanager.consider_pluginarg = consider_pluginarg

    def pytest_addoption(self, parser):
        group = parser.getgroup("xdist", "distributed and subprocess testing")
        group._addoption("-n", "--numprocesses", dest="numprocesses", action="store",
                         default=self.numprocesses)
        group.addoption("--maxprocesses", dest="maxprocesses", action="store")
        group.addoption("--max-worker-restart", dest="maxworkerrestart", action="store")
        group.addoption("--dist", dest="dist", action="store", default="no")
        group.addoption("--loadscope-reorder", dest="loadscopereorder",
                        action="store_true", default=True)
        group.addoption("--no-loadscope-reorder", dest="loadscopereorder",
                        action="store_false")
        group.addoption("--tx", dest="tx", action="append", default=[])
        group.addoption("--px", dest="px", action="append", default=[])
        group._addoption("-d", action="store_true", dest="distload", default=False)
        group.addoption("--rsyncdir", action="append", default=[])
        group.addoption("--rsyncignore", action="append", default=[])
        group.addoption("--testrunuid", action="store")
        group.addoption("--maxschedchunk", action="store")
        group._addoption("-f", "--looponfail", action="store_true", dest="looponfail",
                         default=False)
        parser.addini("rsyncdirs", "rsync roots (xdist)", type="paths")
        parser.addini("rsyncignore", "rsync ignores (xdist)", type="paths")
        parser.addini("looponfailroots", "looponfail roots (xdist)", type="paths")
        parser.addini("hang_timeout", "xdist: seconds before a running test counts as hung")

    def pytest_load_initial_conftests(self, early_config, parser, args):
        # `--report-log` is pytest-reportlog's option; the controller writes the log, so
        # accept it even when that plugin is not installed (its own option wins if it is).
        names = {name for opt in parser._anonymous.options for name in opt.names()}
        for group in parser._groups:
            names.update(name for opt in group.options for name in opt.names())
        group = parser.getgroup("terminal reporting")
        try:
            if "--report-log" not in names:
                group.addoption("--report-log", action="store", metavar="path",
                                default=None, dest="report_log",
                                help="Path to line-based json objects of test session events.")
            if "--report-log-exclude-logs-on-passed-tests" not in names:
                group.addoption("--report-log-exclude-logs-on-passed-tests",
                                action="store_true", default=False,
                                dest="report_log_exclude_logs_on_passed_tests",
                                help="Don't capture logs for passing tests")
        except ValueError:
            pass

    def pytest_configure(self, config):
        config.addinivalue_line(
            "markers", "xdist_group: specify group for tests should run in same session."
        )


class WorkerPlugin(XdistOptions):
    """The pytest plugin that turns a pytest session into an xdist worker."""

    def __init__(self, bootstrap, outbox, queue):
        super().__init__(bootstrap["workerinput"].get("workercount"))
        self.bootstrap = bootstrap
        self.workerinput = bootstrap["workerinput"]
        self.outbox = outbox
        self.emit = outbox.emit
        self.queue = queue
        self.color = bootstrap.get("color", False)
        self.width = bootstrap.get("width", 80)
        self.config = None
        self.items = []
        self.index_of = None
        self.current = None
        self.deselected = 0
        self.tr = None
        # Extra report data for the controller's file reporters (junitxml, report-log).
        self.want_files = bool(bootstrap.get("want_files"))
        self.keep_quiet_reports = True
        self.want_ser = False
        self.summary_plugins = []
        self.controller_plugins = []
        self.controller_reasons = []
        self.ser_keys = None
        self.summary_keys = ()
        self.heap = HeapFreezer()
        # The channel reader's native thread id: the controller sends SIGUSR1 to it alone.
        self.stack_thread = None

    def pytest_configure(self, config):
        super().pytest_configure(config)
        self.config = config
        # pytest-rerunfailures logs a rerun's intermediate reports (`R`) in a worker only
        # when it finds pytest-xdist >= 1.20 installed; this worker speaks for it.
        rerun = sys.modules.get("pytest_rerunfailures")
        if rerun is not None and hasattr(rerun, "works_with_current_xdist"):
            rerun.works_with_current_xdist = lambda: True

    def fixtures_plugin(self):
        """A module plugin holding the `worker_id` and `testrun_uid` fixtures."""
        import types

        import pytest

        workerinput = self.workerinput
        module = types.ModuleType("xdist_worker_fixtures")

        @pytest.fixture(scope="session")
        def worker_id(request):
            """Return the id of the current worker ('gw0', 'gw1', etc) or 'master'."""
            return workerinput["workerid"]

        @pytest.fixture(scope="session")
        def testrun_uid(request):
            """Return the unique id of the current test run."""
            return workerinput["testrunuid"]

        module.worker_id = worker_id
        module.testrun_uid = testrun_uid
        return module

    # -- session lifecycle -------------------------------------------------------------------

    def pytest_sessionstart(self, session):
        self.heap.session_started()
        config = session.config
        self.config = config
        self.tr = config.pluginmanager.get_plugin("terminalreporter")
        if self.tr is not None:
            self.verbose = self.tr.verbosity
            self.reportchars = self.tr.reportchars
            # The controller prints; the worker's own reporter writes nowhere.
            from _pytest.config import create_terminal_writer

            self.tr._tw = create_terminal_writer(config, NullFile())
            self._forward_live_logs(config)
        else:
            self.verbose = config.option.verbose
            self.reportchars = ""
        import platform

        info = {
            "version": sys.version,
            "version_info": list(sys.version_info),
            "sysplatform": sys.platform,
            "platform": platform.platform(),
            "executable": sys.executable,
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "pytest_version": __import__("pytest").__version__,
            "rootdir": str(config.rootpath),
        }
        self.infoline = "[{}] {} -- Python {} {}".format(
            self.workerinput["workerid"],
            sys.platform,
            ".".join(str(x) for x in sys.version_info[:3]),
            sys.executable,
        )
        header = self._header(config) if self.bootstrap.get("want_header") else []
        report_log = bool(getattr(config.option, "report_log", None))
        self.summary_plugins = summary_plugins(config)
        self.controller_plugins = controller_plugins(config)
        self.controller_reasons = controller_reasons(config)
        # Whole reports for pytest-reportlog's lines and for the summary step; controller
        # sessions and controller-only plugins get every report (`ControllerSession.finish`).
        replay = bool(self.controller_plugins or self.controller_reasons)
        self.want_ser = report_log or replay or bool(self.summary_plugins)
        # Which reports: all of them, or (summary hooks that read only some) those that
        # carry one of these attributes.
        self.summary_keys, selective = summary_report_keys(config)
        self.ser_keys = None if report_log or replay or not selective else self.summary_keys
        self.want_files = self.want_files or report_log or bool(
            getattr(config.option, "xmlpath", None)
        )
        self.keep_quiet_reports = (
            self.want_files
            or replay
            or getattr(config.option, "durations", None) is not None
        )
        self.emit({
            "t": "ready",
            "protocol": PROTOCOL_VERSION,
            "info": info,
            "header": header,
            "options": self._options(config),
            "summary_plugins": self.summary_plugins,
            "controller_plugins": self.controller_plugins,
            "controller_reasons": self.controller_reasons,
            "stack_thread": self.stack_thread,
        })
        self.outbox.flush()

    def _forward_live_logs(self, config):
        """`log_cli`: send each record's line to the controller, which prints it at once
        (`[gw0] INFO ...`). pytest-xdist drops them; pytest would write them to the
        terminal reporter, which writes nowhere here."""
        from _pytest.logging import _LiveLoggingStreamHandler

        plugin = config.pluginmanager.get_plugin("logging-plugin")
        handler = getattr(plugin, "log_cli_handler", None)
        if not isinstance(handler, _LiveLoggingStreamHandler):
            return
        emit = self.emit

        def forward(record):
            try:
                text = handler.format(record)
            except Exception:
                return
            emit({"t": "log", "text": text})

        handler.emit = forward

    def _options(self, config):
        """The parsed pytest options the controller's reporter needs."""
        opt = config.option
        tr = self.tr
        progress = tr._show_progress_info if tr is not None else False
        return {
            "verbose": self.verbose,
            "reportchars": self.reportchars,
            "tbstyle": getattr(opt, "tbstyle", "auto"),
            "showcapture": getattr(opt, "showcapture", "all"),
            "foldskipped": getattr(tr, "foldskipped", True) if tr else True,
            "xfail_tb": bool(getattr(opt, "xfail_tb", False)),
            "progress": progress or "",
            "maxfail": getattr(opt, "maxfail", 0) or 0,
            "no_summary": bool(getattr(opt, "no_summary", False)),
            "no_header": bool(getattr(opt, "no_header", False)),
            "continue_on_collection_errors": bool(
                getattr(opt, "continue_on_collection_errors", False)
            ),
            "capture": getattr(opt, "capture", "fd"),
            "durations": getattr(opt, "durations", None),
            "durations_min": getattr(opt, "durations_min", None),
            "startpath": str(config.invocation_params.dir),
            "inipath": str(config.inipath) if config.inipath else None,
            "cache_dir": str(getattr(getattr(config, "cache", None), "_cachedir", "")) or None,
            "pytest_version": __import__("pytest").__version__,
            **self._file_options(config),
        }

    @staticmethod
    def _file_options(config):
        """What the controller's junitxml and report-log writers need (pytest's own values)."""
        opt = config.option
        out = {}
        xmlpath = getattr(opt, "xmlpath", None)
        if xmlpath:
            logfile = os.path.expanduser(os.path.expandvars(xmlpath))
            out["xmlpath"] = os.path.normpath(os.path.abspath(logfile))
            out["junitprefix"] = getattr(opt, "junitprefix", None)
            for name in ("junit_suite_name", "junit_logging", "junit_duration_report",
                         "junit_family"):
                try:
                    out[name] = str(config.getini(name))
                except (ValueError, KeyError):
                    pass
            try:
                out["junit_log_passing_tests"] = bool(config.getini("junit_log_passing_tests"))
            except (ValueError, KeyError):
                pass
        report_log = getattr(opt, "report_log", None)
        if report_log:
            out["report_log"] = str(report_log)
        return out

    def _header(self, config):
        import platform

        import pluggy
        import pytest

        msg = "platform {} -- Python {}".format(sys.platform, platform.python_version())
        pypy = getattr(sys, "pypy_version_info", None)
        if pypy:
            msg += "[pypy-{}-{}]".format(".".join(map(str, pypy[:3])), pypy[3])
        msg += ", pytest-{}, pluggy-{}".format(pytest.__version__, pluggy.__version__)
        if self.verbose > 0 or config.option.debug:
            msg += " -- " + str(sys.executable)
        lines = [msg]
        hook_lines = config.hook.pytest_report_header(
            config=config, start_path=config.invocation_params.dir
        )
        for line_or_lines in reversed(hook_lines):
            if isinstance(line_or_lines, str):
                lines.append(line_or_lines)
            else:
                lines.extend(line_or_lines)
        return lines

    def pytest_internalerror(self, excrepr, excinfo):
        missing = getattr(self.workerinput, "missing", None)
        if missing and not self.bootstrap.get("controller_session"):
            # A plugin wanted what pytest-xdist's controller would have put in
            # `workerinput` (`pytest_configure_node`): the run needs a controller session.
            fatal(self.outbox, "controller_session",
                  "workerinput has no {}".format(", ".join(sorted(map(repr, missing)))), 3)
            return
        self.emit({"t": "internal_error", "text": str(excrepr)})
        self.outbox.flush()

    def pytest_deselected(self, items):
        self.deselected += len(items)

    def pytest_collectreport(self, report):
        self.heap.collected()
        if report.passed:
            # pytest's LFPlugin replaces a node that failed to collect last time by its
            # items once it collects: the controller writes `lastfailed`, so tell it.
            lf = self.config.pluginmanager.get_plugin("lfplugin")
            lastfailed = getattr(lf, "lastfailed", None)
            if lastfailed and getattr(report, "id", report.nodeid) in lastfailed:
                msg = self._report(report, None)
                msg["result"] = [item.nodeid for item in report.result]
                self.emit({"t": "collectreport", "r": msg})
            return
        self.emit({"t": "collectreport", "r": self._report(report, None)})

    def pytest_collection_finish(self, session):
        self.items = session.items
        ids = [item.nodeid for item in self.items]
        groups = []
        if self.bootstrap.get("dist") in ("loadgroup", "worksteal"):
            groups = [self._group_of(item) for item in self.items]
            if not any(groups):
                groups = []
        lines = []
        hook_lines = self.config.hook.pytest_report_collectionfinish(
            config=self.config, start_path=self.config.invocation_params.dir,
            items=session.items,
        )
        for line_or_lines in reversed(hook_lines):
            if isinstance(line_or_lines, str):
                lines.append(line_or_lines)
            else:
                lines.extend(line_or_lines)
        self.emit({
            "t": "collectionfinish",
            "ids": ids,
            "groups": groups,
            "errors": session.testsfailed,
            "deselected": self.deselected,
            "lines": lines,
        })
        self.outbox.flush()

    @staticmethod
    def _group_of(item):
        names = set()
        for mark in item.iter_markers("xdist_group"):
            name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
            names.add(str(name))
        return "_".join(sorted(names)) if names else None

    def pytest_runtestloop(self, session):
        if ZYGOTE is not None and ZYGOTE.is_zygote:
            ZYGOTE.serve(self)  # returns in a forked child, as its worker
        self.heap.run_starts()
        config = session.config
        if session.testsfailed and not config.option.continue_on_collection_errors:
            # pytest stops here; the controller reports it once for all workers.
            self.queue.pop(self.outbox.flush)
            return True
        items = self.items
        perf = _perf_counter
        pending = self.queue.pop(self.outbox.flush)
        while pending is not SHUTDOWN and pending is not LINGER:
            index = pending
            # pytest needs the next item to decide which fixtures to tear down.
            pending = self.queue.pop(self.outbox.flush)
            item = items[index]
            nextitem = None if pending is SHUTDOWN or pending is LINGER else items[pending]
            self.current = index
            start = perf()
            config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            # Still the test's crash if it broke the channel (cheap: two fstat calls).
            self.outbox.channel.check()
            self.emit({"t": "done", "i": index, "d": perf() - start})
            self.current = None
            if session.shouldfail or session.shouldstop:
                break
        else:
            if pending is LINGER:
                self.linger()
        # The last test's reports go out before the session hooks run: one that kills the
        # process (`os._exit` in a conftest's `pytest_sessionfinish`) must not take them along.
        self.outbox.flush()
        return True

    def linger(self):
        """After the last test, wait for the end of the run: the controller may first ask
        for the summary step's hooks over every worker's reports (`summarize`)."""
        self.emit({"t": "lingering"})
        while True:
            command = self.queue.pop(self.outbox.flush)
            if command is SHUTDOWN:
                return
            if not isinstance(command, dict):
                continue
            try:
                reports = load_reports(self.config, command["reports"],
                                       command.get("workerinfo", {}))
                text, error = run_summary_hooks(
                    self.config, reports, command.get("warnings", []),
                    command.get("exitstatus", 0), self.summary_plugins, self.width, self.color,
                ), None
            except Exception:
                import traceback

                text, error = "", traceback.format_exc()
            self.emit({"t": "summary", "text": text, "error": error})
            self.outbox.flush()

    def pytest_runtest_logstart(self, nodeid, location):
        if FORKED_COPY:
            leave_forked_copy(0)
        # Always sent: the controller times running tests for --hang-timeout.
        if self.current is None:
            return
        if self.verbose > 0:
            self.emit({"t": "logstart", "i": self.current, "loc": self._locline(nodeid, location)})
        else:
            self.emit({"t": "logstart", "i": self.current})
        # Sent now, with every report before it: if this test kills the process, the
        # controller knows which test was running and which ones had finished.
        self.outbox.flush()

    def pytest_runtest_logreport(self, report):
        if FORKED_COPY:
            # As the copy's own session would end: failed if this report failed.
            leave_forked_copy(1 if report.failed else 0)
        status = self.config.hook.pytest_report_teststatus(report=report, config=self.config)
        if (
            report.passed
            and report.when != "call"
            and not report.sections
            and not self.keep_quiet_reports
            and not any(status)
            and not self._wanted_by_summary(report)
        ):
            # A passing setup/teardown with nothing captured shows nowhere (no letter, no
            # section) unless a file report or --durations wants it: don't send it.
            return
        self.emit(self._report(report, self.current, status))

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        from _pytest.terminal import WarningReport
        from _pytest.warnings import warning_record_to_str

        wr = WarningReport(
            message=warning_record_to_str(warning_message),
            nodeid=nodeid,
            fslocation=(warning_message.filename, warning_message.lineno),
        )
        msg = {
            "t": "warning",
            "message": wr.message,
            "location": wr.get_location(self.config) if self.config is not None else None,
            "when": when,
            "nodeid": nodeid,
        }
        if self.summary_plugins or self.controller_plugins or self.controller_reasons:
            # Everything the summary step needs to rebuild the warning (see `summarize`).
            category = warning_message.category or UserWarning
            msg["sw"] = json.dumps(_json_clean({
                "text": wr.message,
                "nodeid": nodeid,
                "when": when,
                "location": location,
                "message": str(warning_message.message),
                "category": category.__name__,
                "category_module": category.__module__,
                "filename": warning_message.filename,
                "lineno": warning_message.lineno,
            }))
        if self.want_ser:
            # pytest-reportlog's WarningMessage record.
            category = warning_message.category
            msg["rl"] = json.dumps(_json_clean({
                "category": category.__name__ if category else None,
                "filename": warning_message.filename,
                "lineno": warning_message.lineno,
                "message": warning_message.message,
                "$report_type": "WarningMessage",
                "when": when,
                "location": location,
            }))
        self.emit(msg)

    # -- report rendering --------------------------------------------------------------------

    def _locline(self, nodeid, location, rep=None):
        """pytest's `-v` location line (` <- file` at -vv when defined elsewhere)."""
        if self.tr is not None:
            # pytest >= 9.2 takes the structured id (`rep.id`); older ones the string.
            node_id = nodeid
            node_id_class = _node_id_class()
            if node_id_class is not None:
                node_id = getattr(rep, "id", None) or node_id_class.parse(nodeid)
            try:
                return self.tr._locationline(node_id, *location)
            except Exception:
                pass
        return nodeid + " "

    def _writer(self):
        from _pytest.config import create_terminal_writer

        tw = create_terminal_writer(self.config, io.StringIO())
        tw.hasmarkup = self.color
        tw.fullwidth = self.width
        return tw

    def _report(self, rep, index, status=None):
        """The report message; `status` is the report's teststatus when already asked."""
        config = self.config
        if status is None:
            status = config.hook.pytest_report_teststatus(report=rep, config=config)
        category, letter, word = status
        markup = None
        if isinstance(word, tuple):
            word, markup = word
        msg = {"t": "report", "w": rep.when, "o": rep.outcome, "d": getattr(rep, "duration", 0.0)}
        if index is not None:
            msg["i"] = index
            if rep.nodeid != self.items[index].nodeid:
                msg["nodeid"] = rep.nodeid
        else:
            msg["nodeid"] = rep.nodeid
        if category:
            msg["c"] = category
        if letter:
            msg["l"] = letter
        if word:
            msg["W"] = word
        if markup:
            msg["m"] = dict(markup)
        if not getattr(rep, "count_towards_summary", True):
            msg["cts"] = False
        if self.verbose > 0 and (letter or word) and rep.location is not None:
            msg["loc"] = self._locline(rep.nodeid, rep.location, rep)
        if self.want_files:
            self._file_data(rep, msg)
        if self.want_ser and (self.ser_keys is None or self._wanted_by_summary(rep)):
            self._serialized(rep, msg)
        if rep.passed and not rep.sections and category not in ("xpassed", "xfailed"):
            if self.want_files and getattr(rep, "location", None) is not None:
                fspath, lineno, domain = rep.location
                msg["location"] = [fspath, lineno, domain]
            return msg
        # Anything that can appear in a summary section: render it now, with pytest.
        if rep.location is not None:
            fspath, lineno, domain = rep.location
            msg["location"] = [fspath, lineno, domain]
        rc = self.reportchars
        if (
            rep.failed
            or category in ("failed", "error")
            or (category == "xfailed" and self._option("xfail_tb", False))
            or (category == "xpassed" and "X" in rc and rep.sections)
            or (category == "passed" and "P" in rc and rep.sections)
        ):
            msg["head"] = rep.head_line or "test session"
            if self._option("tbstyle", "auto") == "line" and self.tr is not None:
                msg["crashline"] = self.tr._getcrashline(rep)
            msg["body"] = self._body(rep)
        if rep.when == "teardown" and rep.sections:
            tds = self._teardown_sections(rep)
            if tds:
                msg["tds"] = tds
        if hasattr(rep, "wasxfail"):
            msg["xfail"] = str(rep.wasxfail)
        short = self._short(rep, category)
        if short:
            msg["short"] = short
        if rep.skipped and isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3:
            msg["skip"] = self._skip_key(rep)
        if rep.failed or rep.skipped:
            try:
                msg["text"] = rep.longreprtext
            except Exception:
                pass
        if rep.sections:
            msg["sections"] = [[name, content] for name, content in rep.sections]
        if _rough_size(msg) > EVENT_BUDGET:
            # Cut now: encoding a report of hundreds of MB only to cut it costs seconds.
            msg = _cut_texts(msg, EVENT_BUDGET // 4)
        return msg

    def _file_data(self, rep, msg):
        """Report data only the controller's file reporters use."""
        longrepr = rep.longrepr
        if longrepr is not None:
            reprcrash = getattr(longrepr, "reprcrash", None)
            if reprcrash is not None:
                msg["crash"] = str(reprcrash.message)
            is_tuple = isinstance(longrepr, tuple) and len(longrepr) == 3
            if is_tuple:
                msg["lrt"] = [str(longrepr[0]), longrepr[1], str(longrepr[2])]
            if (rep.failed or rep.skipped) and (rep.when == "collect" or not is_tuple):
                try:
                    msg["lr"] = str(longrepr)
                except Exception:
                    msg["lr"] = "<unprintable longrepr>"
        props = getattr(rep, "user_properties", None)
        if props:
            msg["props"] = [[str(name), str(value)] for name, value in props]

    def _wanted_by_summary(self, rep):
        """The report carries what a selective summary hook reads (hypothesis's statistics
        ride on the teardown report, which is otherwise not sent)."""
        # On the per-test path: nothing to look for in most runs.
        return bool(self.summary_keys) and any(key in rep.__dict__ for key in self.summary_keys)

    def _serialized(self, rep, msg):
        """The whole report, for pytest-reportlog's lines and for the summary step."""
        config = self.config
        data = config.hook.pytest_report_to_serializable(config=config, report=rep)
        if data is None:
            return
        if (
            getattr(config.option, "report_log_exclude_logs_on_passed_tests", False)
            and data.get("outcome", "") == "passed"
        ):
            data["sections"] = [
                s for s in data.get("sections", [])
                if s[0] not in ("Captured log setup", "Captured log call",
                                "Captured log teardown")
            ]
        msg["ser"] = json.dumps(_json_clean(data))

    def _option(self, name, default):
        return getattr(self.config.option, name, default)

    def _body(self, rep):
        tw = self._writer()
        tw.line(self.infoline)
        longrepr = rep.longrepr
        if longrepr is not None:
            if hasattr(longrepr, "toterminal"):
                try:
                    longrepr.toterminal(tw)
                except UnicodeEncodeError:
                    tw.line("<unprintable longrepr>")
            elif not isinstance(longrepr, tuple):
                tw.line(str(longrepr))
        showcapture = getattr(self.config.option, "showcapture", "all")
        if showcapture != "no":
            for secname, content in rep.sections:
                if showcapture != "all" and showcapture not in secname:
                    continue
                tw.sep("-", secname)
                if content[-1:] == "\n":
                    content = content[:-1]
                tw.line(content)
        return tw._file.getvalue()

    def _teardown_sections(self, rep):
        showcapture = getattr(self.config.option, "showcapture", "all")
        if showcapture == "no":
            return ""
        tw = self._writer()
        for secname, content in rep.sections:
            if showcapture != "all" and showcapture not in secname:
                continue
            if "teardown" in secname:
                tw.sep("-", secname)
                if content[-1:] == "\n":
                    content = content[:-1]
                tw.line(content)
        return tw._file.getvalue()

    def _short(self, rep, category):
        """The `-r` short-summary line pytest would print for this report, if any."""
        from _pytest import terminal

        tw = self._writer()
        try:
            if category in ("failed", "error", "passed"):
                color = terminal._color_for_type.get(category, terminal._color_for_type_default)
                return terminal._get_line_with_reprcrash_message(
                    self.config, rep, tw, {color: True}
                )
            if category in ("xfailed", "xpassed", "skipped"):
                word, markup = rep._get_verbose_word_with_markup(
                    self.config, {terminal._color_for_type["warnings"]: True}
                )
                markup_word = tw.markup(word, **markup)
                if category == "skipped":
                    return markup_word
                nodeid = terminal._get_node_id_with_markup(tw, self.config, rep)
                if category == "xfailed" and rep.when != "call":
                    line = "{} at {} of {}".format(markup_word, rep.when, nodeid)
                else:
                    line = "{} {}".format(markup_word, nodeid)
                reason = getattr(rep, "wasxfail", "")
                if reason:
                    line += " - " + str(reason)
                return line
        except Exception:
            return None
        return None

    def _skip_key(self, rep):
        from pathlib import Path

        from _pytest.pathlib import bestrelpath

        fspath, lineno, reason = rep.longrepr
        fspath = bestrelpath(self.config.invocation_params.dir, Path(fspath))
        keywords = getattr(rep, "keywords", {})
        if rep.when == "setup" and "skip" in keywords and "pytestmark" not in keywords:
            lineno = None
        return [fspath, lineno, str(reason)]


def make_finish_reporter(pytest, worker):
    """Sends `finished` after every other `pytest_sessionfinish` ran (pytest-xdist's order)."""

    class FinishReporter:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_sessionfinish(self, session, exitstatus):
            workeroutput = session.config.workeroutput
            workeroutput["exitstatus"] = int(exitstatus)
            workeroutput["shouldfail"] = session.shouldfail
            workeroutput["shouldstop"] = session.shouldstop
            yield
            output = wire_dict(workeroutput)
            cov = session.config.pluginmanager.get_plugin("_cov")
            if "cov_worker_node_id" in output and getattr(cov, "options", None) is not None:
                # pytest-cov's parsed options, for the controller's DistMaster step (cov.rs).
                output["xdist_cov_options"] = {
                    k: v for k, v in vars(cov.options).items()
                    if (k.startswith(("cov", "no_cov")) or k == "collectonly") and _jsonable(v)
                }
            worker.emit({
                "t": "finished",
                "exitstatus": int(session.exitstatus),
                "shouldfail": session.shouldfail,
                "shouldstop": session.shouldstop,
                "workeroutput": output,
            })
            worker.outbox.flush()
            worker.finished_status = int(session.exitstatus)
            worker.heap.session_reported()

    return FinishReporter()


# ---------------------------------------------------------------------------------------
# The summary step: `pytest_terminal_summary` hooks the controller cannot render itself.

# Their implementations the controller does render: pytest's own (FAILURES, short summary,
# --durations, ...) and pytest-cov's report (xdist-cli's cov.rs).
NATIVE_SUMMARY_MODULES = ("_pytest", "pytest_cov")
SUMMARY_RESULT_PREFIX = "XDIST-SUMMARY-RESULT:"


def _module_root(plugin):
    import types

    if isinstance(plugin, types.ModuleType):
        name = plugin.__name__
    else:
        name = type(plugin).__module__
    return (name or "").split(".")[0]


# Summary hooks that read only the reports carrying certain attributes (by the plugin's
# module): hypothesis's reads its statistics and failing examples.
SELECTIVE_SUMMARY_PLUGINS = {
    "_hypothesis_pytestplugin": ("_hypothesis_stats", "_hypothesis_failing_examples"),
}


def summary_report_keys(config):
    """The report attributes the selective summary hooks read (reports carrying one are
    always sent), and whether every summary hook is selective (then only those reports
    travel serialized)."""
    keys, selective = set(), True
    for impl in config.hook.pytest_terminal_summary.get_hookimpls():
        root = _module_root(impl.plugin)
        if root in NATIVE_SUMMARY_MODULES:
            continue
        if root in SELECTIVE_SUMMARY_PLUGINS:
            keys.update(SELECTIVE_SUMMARY_PLUGINS[root])
        else:
            selective = False
    return tuple(sorted(keys)), selective


def summary_plugins(config):
    """Names of the plugins and initial conftests with a `pytest_terminal_summary` that only
    the summary step can run (pytest-rerunfailures' `-rR` section, hypothesis, a conftest's
    own section...)."""
    names = []
    for impl in config.hook.pytest_terminal_summary.get_hookimpls():
        if _module_root(impl.plugin) not in NATIVE_SUMMARY_MODULES:
            names.append(str(impl.plugin_name))
    return names


def load_reports(config, reports, workerinfo):
    """The run's reports from their `{"w": worker id, "r": serialized}` JSON texts, each with
    the `node` pytest-xdist's controller gives it (its header line in `longreprtext`)."""
    import types

    nodes = {
        wid: types.SimpleNamespace(gateway=types.SimpleNamespace(id=wid), workerinfo=info)
        for wid, info in workerinfo.items()
    }
    loaded = []
    for text in reports:
        entry = json.loads(text)
        data = entry["r"]
        if isinstance(data.get("longrepr"), list):
            data["longrepr"] = tuple(data["longrepr"])  # a skip's (path, line, reason)
        rep = config.hook.pytest_report_from_serializable(config=config, data=data)
        if rep is None:
            continue
        node = nodes.get(entry.get("w"))
        if node is not None:
            rep.node = node
        loaded.append(rep)
    return loaded


def run_summary_hooks(config, reports, warnings, exitstatus, names, width, color):
    """Calls the `pytest_terminal_summary` hooks of the plugins `names` with the terminal
    reporter's stats rebuilt from `reports` (`load_reports`) and `warnings` (the whole
    run's); returns what they wrote."""
    from _pytest.config import create_terminal_writer
    from _pytest.terminal import WarningReport

    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return ""
    out = io.StringIO()
    tw = create_terminal_writer(config, out)
    tw.fullwidth = width
    tw.hasmarkup = bool(color)
    # As on pytest-xdist's controller: no file's progress line is open.
    saved = tr._tw, tr.stats, tr.currentfspath
    tr._tw, tr.stats, tr.currentfspath = tw, {}, None
    try:
        hook = config.hook
        for rep in reports:
            category = hook.pytest_report_teststatus(report=rep, config=config)[0]
            tr.stats.setdefault(category, []).append(rep)
        for text in warnings:
            data = json.loads(text)
            tr.stats.setdefault("warnings", []).append(WarningReport(
                message=data["text"], nodeid=data["nodeid"],
                fslocation=(data["filename"], data["lineno"]),
            ))
        pm = config.pluginmanager
        wanted = set(names)
        others = [plugin for plugin in pm.get_plugins() if pm.get_name(plugin) not in wanted]
        summary = pm.subset_hook_caller("pytest_terminal_summary", remove_plugins=others)
        summary(terminalreporter=tr, exitstatus=exitstatus, config=config)
    finally:
        tr._tw, tr.stats, tr.currentfspath = saved
    return out.getvalue()


# Plugins that act only where there is no `workerinput` (pytest-xdist's controller), by the
# option that turns them on: (option dest, plugin).
CONTROLLER_PLUGIN_OPTIONS = (
    ("htmlpath", "pytest-html"),
    ("json_report", "pytest-json-report"),
)


def controller_plugins(config):
    """The controller-only plugins this run turns on: the summary step runs them (`mirror`)."""
    return [
        name for dest, name in CONTROLLER_PLUGIN_OPTIONS
        if getattr(config.option, dest, None)
    ]


def _warning_message(data):
    """A `warnings.WarningMessage` like the one a worker recorded. Its category is looked up
    where importing is harmless (already imported, or builtins); else a stand-in class of
    the same name."""
    import warnings

    module = sys.modules.get(data["category_module"])
    category = getattr(module, data["category"], None) if module is not None else None
    if not (isinstance(category, type) and issubclass(category, Warning)):
        category = type(data["category"], (UserWarning,), {})
    return warnings.WarningMessage(
        category(data["message"]), category, data["filename"], data["lineno"]
    )


# Hooks only pytest-xdist's controller calls.
CONTROLLER_HOOKS = (
    "pytest_configure_node", "pytest_testnodeready", "pytest_testnodedown",
    "pytest_xdist_setupnodes", "pytest_xdist_newgateway",
    "pytest_xdist_node_collection_finished",
)
# Their controller hooks need no controller session: pytest-cov's and pytest-randomly's
# `workerinput` come from xdist-cli (cov.rs, randomly.rs); pytest-metadata's
# `pytest_testnodedown` only feeds pytest-html's environment table.
HANDLED_CONTROLLER_MODULES = NATIVE_SUMMARY_MODULES + (
    "pytest_randomly", "pytest_metadata", "__xdist_worker__",
)
# Plugins that register their controller hooks only where pytest-xdist is active
# (`hasplugin("xdist")`, false in a worker) are found by these words in their module.
# pytest-rerunfailures' need none: its workers keep their own failure counts, and its `-rR`
# section comes from the summary step.
CONTROLLER_HOOK_DEFS = ("def pytest_configure_node(", "def pytest_testnodedown(")
SELF_SUFFICIENT_MODULES = HANDLED_CONTROLLER_MODULES + ("pytest_rerunfailures",)
# Session hooks a conftest may run differently on the controller, and the words that tell
# it apart from a worker.
SESSION_HOOKS = ("pytest_configure", "pytest_sessionstart", "pytest_sessionfinish",
                 "pytest_unconfigure")
CONTROLLER_MARKERS = ("workerinput", "is_xdist_controller", "is_xdist_master",
                      "get_xdist_worker_id", "PYTEST_XDIST_WORKER")


def controller_reasons(config):
    """Why this run needs a `ControllerSession` from its start: plugins implementing hooks
    only pytest-xdist's controller calls (`pytest_configure_node`: pytest-xdist workers get
    what they add to `workerinput`), and conftests whose session hooks check whether they
    run on a worker (controller-side setup, environment for the workers, cleanup)."""
    import types

    reasons = []
    pm = config.pluginmanager
    for name in CONTROLLER_HOOKS:
        for impl in getattr(config.hook, name).get_hookimpls():
            if _module_root(impl.plugin) not in HANDLED_CONTROLLER_MODULES:
                reasons.append("{}: {}".format(impl.plugin_name, name))
    for plugin in pm.get_plugins():
        if not isinstance(plugin, types.ModuleType):
            continue
        path = getattr(plugin, "__file__", None) or ""
        if os.path.basename(path) != "conftest.py":
            name = pm.get_name(plugin)
            known = any(r.startswith("{}: ".format(name)) for r in reasons)
            if path and not known and _module_root(plugin) not in SELF_SUFFICIENT_MODULES:
                reason = _deferred_controller_hooks(name, path)
                if reason:
                    reasons.append(reason)
            continue
        if not any(hasattr(plugin, hook) for hook in SESSION_HOOKS):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if any(marker in text for marker in CONTROLLER_MARKERS):
            reasons.append("{}: controller-side session hooks".format(path))
    return reasons


def _deferred_controller_hooks(name, path):
    """A reason when the plugin module at `path` defines controller hooks it did not register
    here (syrupy registers `pytest_testnodedown` only where `hasplugin("xdist")`)."""
    if not path.endswith(".py"):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    found = [d[4:-1] for d in CONTROLLER_HOOK_DEFS if d in text]
    if not found:
        return None
    return "{}: {} (registered where pytest-xdist is active)".format(name, ", ".join(found))


# Where controller-only plugins keep the time their session started (they time the run).
PLUGIN_START_TIMES = {"pytest_html": "_suite_start_time", "pytest_jsonreport": "_start_time"}


class ControllerSession:
    """What pytest-xdist's controller is: a pytest session of the user's arguments, plugins
    and initial conftests, without `workerinput`. Only plugins pytest does not own take part
    (pytest's own reporting is the Rust controller's; pytest-cov's is cov.rs's), and they get
    the calls pytest-xdist's controller makes: `pytest_sessionstart`, `pytest_configure_node`
    for each worker, then each report's `pytest_runtest_logreport`/`pytest_collectreport`,
    each warning's `pytest_warning_recorded`, `pytest_testnodedown` for each worker,
    `pytest_sessionfinish` and `pytest_terminal_summary`.
    """

    def __init__(self, data):
        if sys.path and sys.path[0] in ("", os.getcwd()):
            del sys.path[0]
        sys.meta_path.append(StandinFinder())
        from _pytest.config import _prepareconfig
        from _pytest.main import Session

        # It plays pytest-xdist's controller: plugins see "xdist" (and register their
        # controller hooks, `pytest_configure_node`...); the real pytest-xdist stays out.
        args = ["-p", "no:xdist.looponfail"] + list(data["args"])
        self.data = data
        options = XdistOptions(data.get("numprocesses"), name="xdist")
        self.config = _prepareconfig(args, plugins=[options])
        self.config._do_configure()
        pm = self.pm = self.config.pluginmanager
        # pytest-randomly's seed for the workers comes from randomly.rs.
        self.native = [plugin for plugin in pm.get_plugins()
                       if _module_root(plugin) in NATIVE_SUMMARY_MODULES + ("pytest_randomly",)]
        self.session = Session.from_config(self.config)
        # Each worker's node, as `pytest_configure_node` got it: later hooks get the same.
        self.nodes = {}

    def call(self, name, **kwargs):
        return self.pm.subset_hook_caller(name, remove_plugins=self.native)(**kwargs)

    def start(self):
        self.call("pytest_sessionstart", session=self.session)

    def configure_node(self, workerid, spec, workerinput):
        """`pytest_configure_node`: the worker's `workerinput` as the plugins leave it."""
        import types

        node = types.SimpleNamespace(
            workerinput=dict(workerinput), config=self.config,
            gateway=types.SimpleNamespace(id=workerid, spec=spec),
        )
        self.nodes[workerid] = node
        self.call("pytest_configure_node", node=node)
        return wire_dict(node.workerinput)

    def finish(self, data, replay):
        """The end of the run; returns what `pytest_terminal_summary` hooks wrote."""
        import types

        from _pytest.reports import CollectReport

        config, session = self.config, self.session
        exitstatus = data.get("exitstatus", 0)
        reports = load_reports(config, data["reports"], data.get("workerinfo", {}))
        if replay:
            # They started with the run, not with this process.
            for plugin in self.pm.get_plugins():
                attr = PLUGIN_START_TIMES.get(_module_root(plugin))
                started = data.get("started")
                if started and attr and isinstance(getattr(plugin, attr, None), float):
                    setattr(plugin, attr, started)
            # pytest-xdist's controller counts the collection the workers sent.
            session.testscollected = data.get("collected", 0)
            for rep in reports:
                if isinstance(rep, CollectReport):
                    self.call("pytest_collectreport", report=rep)
                else:
                    self.call("pytest_runtest_logreport", report=rep)
            recorded = self.pm.subset_hook_caller(
                "pytest_warning_recorded", remove_plugins=self.native
            )
            for text in data.get("warnings", []):
                warning = json.loads(text)
                location = warning.get("location")
                recorded.call_historic(kwargs=dict(
                    warning_message=_warning_message(warning), when=warning["when"],
                    nodeid=warning["nodeid"], location=tuple(location) if location else None,
                ))
            for down in data.get("nodes", []):
                node = self.nodes.get(down["id"]) or types.SimpleNamespace(
                    workerinput={}, config=config,
                    gateway=types.SimpleNamespace(id=down["id"], spec=down.get("spec")),
                )
                node.workeroutput = from_wire(down.get("workeroutput") or {})
                node.workerinfo = down.get("workerinfo") or {}
                self.call("pytest_testnodedown", node=node, error=down.get("error"))
            session.exitstatus = exitstatus
            self.call("pytest_sessionfinish", session=session, exitstatus=exitstatus)
        if not data.get("summary", True):
            return ""
        return run_summary_hooks(
            config, reports, data.get("warnings", []), exitstatus, summary_plugins(config),
            data.get("width", 80), data.get("color"),
        )

    def close(self):
        self.config._ensure_unconfigure()


def summarize(data):
    """The summary step's slow path, when no worker is left to run it (see `linger`), or
    when controller-only plugins need a controller (`mirror`): print the hooks' text after
    SUMMARY_RESULT_PREFIX, as one JSON string. A `ControllerSession` started after the
    tests."""
    controller = ControllerSession(data)
    try:
        if data.get("mirror"):
            controller.start()
        text = controller.finish(data, replay=bool(data.get("mirror")))
    finally:
        controller.close()
    sys.stdout.write("\n" + SUMMARY_RESULT_PREFIX + json.dumps(text) + "\n")
    sys.stdout.flush()


def serve_controller(data):
    """A `ControllerSession` for the whole run, when plugins or conftests act on
    pytest-xdist's controller (`controller_reasons`): started before the workers, it answers
    the Rust controller's requests, one JSON line each way, its lines marked with
    SUMMARY_RESULT_PREFIX (other output passes through to the terminal)."""

    # pytest's capturing takes fds 0 and 1 over while the session runs: keep our own.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")

    def reply(message):
        replies.write("\n" + SUMMARY_RESULT_PREFIX + json.dumps(message) + "\n")
        replies.flush()

    before = dict(os.environ)
    controller = ControllerSession(data)
    try:
        controller.start()
        # Workers inherit the controller's environment, as changed by its plugins.
        env = {k: v for k, v in os.environ.items() if before.get(k) != v}
        reply({"t": "started", "env": env})
        for line in requests:
            request = json.loads(line)
            if request["t"] == "configure_node":
                workerinput = controller.configure_node(
                    request["id"], request.get("spec"), request["workerinput"]
                )
                reply({"t": "workerinput", "workerinput": workerinput})
            elif request["t"] == "finish":
                text = controller.finish(request, replay=True)
                exitstatus = getattr(controller.session, "exitstatus", None)
                reply({"t": "summary", "text": text,
                       "exitstatus": int(exitstatus) if exitstatus is not None else None})
                break
    finally:
        controller.close()


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


def keep_early_coverage(config):
    """Keeps what pytest-cov measured before the session started, as pytest-xdist's runs do.

    pytest-cov starts coverage while the initial conftests load (a worker sees `-n`, so that
    is a `DistMaster`), then at session start a `DistWorker` whose data is the only data a
    worker saves. Under pytest-xdist the controller process imports the same conftests under
    its own coverage, so what runs at conftest import (a conftest importing the package:
    its module-level lines) is counted; here the controller is not Python: the worker merges
    that early data into its `DistWorker`'s before pytest-cov saves or sends it.
    """
    cov = config.pluginmanager.get_plugin("_cov")
    early = getattr(getattr(cov, "cov_controller", None), "cov", None)
    if early is None or not hasattr(cov, "start"):
        return
    start = cov.start

    def start_then_merge(controller_cls, *args, **kwargs):
        start(controller_cls, *args, **kwargs)
        worker = cov.cov_controller
        finish = worker.finish

        def finish_with_early_data():
            try:
                worker.cov.get_data().update(early.get_data())
            except Exception:
                pass
            finish()
            try:
                early.stop()
            except Exception:
                pass

        worker.finish = finish_with_early_data
        cov.start = start

    cov.start = start_then_merge


def exit_worker(code):
    """Ends the process: atexit handlers first (coverage's `COVERAGE_PROCESS_START` data, the
    user's own), as a normal interpreter exit would, then `os._exit` (no module teardown).
    A zygote that failed before forking still forks children that report what it reported
    (the controller hears every worker say it)."""
    import atexit

    if ZYGOTE is not None and ZYGOTE.is_zygote:
        ZYGOTE.serve(replay_exit=code)

    try:
        atexit._run_exitfuncs()
    except Exception:
        pass
    os._exit(code)


def main(channel_in, channel_out_fd):
    global CHANNEL_FDS, WORKER_PID
    CHANNEL_FDS = (channel_in.fileno(), channel_out_fd)
    WORKER_PID = os.getpid()
    os.register_at_fork(after_in_child=_after_fork_in_child)
    channel = Channel(channel_in, channel_out_fd)
    outbox = Outbox(channel)
    payload = channel.recv()
    if payload is None:
        os._exit(3)
    bootstrap = json.loads(payload)
    if bootstrap.get("protocol") != PROTOCOL_VERSION:
        fatal(outbox, "protocol", "worker speaks protocol {} but the controller sent {}".format(
            PROTOCOL_VERSION, bootstrap.get("protocol")))
        os._exit(3)
    global ZYGOTE
    ZYGOTE = Zygote.from_environ(channel_in, channel_out_fd)
    if ZYGOTE is not None:
        outbox.channel = ZYGOTE.recording
    workerinput = bootstrap["workerinput"] = WorkerInput(from_wire(bootstrap["workerinput"]))
    os.environ["PYTEST_XDIST_WORKER"] = workerinput["workerid"]
    os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(workerinput["workercount"])
    os.environ["PYTEST_XDIST_TESTRUNUID"] = workerinput["testrunuid"]
    # Import like the `pytest` command does: the current directory is not on sys.path.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    sys.path.extend(bootstrap.get("sys_path") or [])
    if bootstrap.get("remote"):
        # A remote worker imports from its (synced) working directory, as pytest-xdist's.
        cwd = os.getcwd()
        sys.path.insert(0, cwd)
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = cwd + (os.pathsep + old if old else "")
    sys.meta_path.append(StandinFinder())
    try:
        import pytest
        from _pytest.config import _prepareconfig
    except ImportError as exc:
        fatal(outbox, "no_pytest", "{}: {}".format(type(exc).__name__, exc))
        exit_worker(4)
    major = int(pytest.__version__.split(".")[0])
    if major < 7:
        fatal(outbox, "old_pytest", "pytest {} is too old".format(pytest.__version__))
        exit_worker(4)

    # Python stacks of every thread on SIGUSR1: the controller asks before killing a hung worker.
    import faulthandler
    import signal

    # A dup of the real stderr: pytest's capturing redirects fd 2 while a test runs.
    global STACK_DUMP_FILE
    STACK_DUMP_FILE = os.fdopen(os.dup(2), "w")
    faulthandler.register(signal.SIGUSR1, file=STACK_DUMP_FILE, all_threads=True)
    queue = WorkQueue(channel)
    reader = None
    if ZYGOTE is None:
        outbox.start_flusher()
        reader = threading.Thread(target=queue.read_commands, name="xdist-channel", daemon=True)
        reader.start()
    else:
        # No thread may run at fork time: each child starts its own (see `Zygote`).
        queue.channel = ZYGOTE.recording

    worker = WorkerPlugin(bootstrap, outbox, queue)
    worker.stack_thread = getattr(reader, "native_id", None)
    plugins = [worker, worker.fixtures_plugin(), make_finish_reporter(pytest, worker)]
    # An installed pytest-xdist must not take over inside a worker.
    args = ["-p", "no:xdist", "-p", "no:xdist.looponfail"] + list(bootstrap["args"])
    try:
        config = _prepareconfig(args, plugins=plugins)
    except pytest.UsageError as exc:
        fatal(outbox, "usage", "ERROR: " + "\n".join(str(a) for a in exc.args), 4)
        exit_worker(4)
    except SystemExit as exc:
        fatal(outbox, "usage", "pytest exited during startup", exc.code if isinstance(exc.code, int) else 4)
        exit_worker(4)
    except Exception as exc:
        import traceback

        fatal(outbox, "startup", "".join(traceback.format_exception(exc)), 3)
        exit_worker(3)
    keep_early_coverage(config)
    opt = config.option
    dist = bootstrap.get("dist", "load")
    opt.loadgroup = dist == "loadgroup"
    opt.looponfail = False
    opt.usepdb = False
    opt.dist = "no"
    opt.distload = False
    opt.numprocesses = None
    opt.maxprocesses = None
    if bootstrap.get("basetemp"):
        opt.basetemp = bootstrap["basetemp"]
    config.workerinput = workerinput
    config.workeroutput = {}
    try:
        exitstatus = config.hook.pytest_cmdline_main(config=config)
    except pytest.UsageError as exc:
        # E.g. `file or directory not found: x.py`, raised during collection: pytest's own
        # main prints it as `ERROR: ...` and exits 4; the controller does that once for all.
        fatal(outbox, "usage", "ERROR: " + "\n".join(str(a) for a in exc.args), 4)
        sys.stdout.flush()
        sys.stderr.flush()
        exit_worker(4)
    except Exception:
        import traceback

        finished_status = getattr(worker, "finished_status", None)
        if finished_status is None:
            outbox.emit({"t": "internal_error", "text": traceback.format_exc()})
            exitstatus = 3
        else:
            # From pytest_unconfigure: the session and its reports are complete.
            outbox.emit({"t": "unconfigure_error", "text": traceback.format_exc()})
            exitstatus = finished_status
        outbox.flush()
    outbox.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    exit_worker(int(exitstatus) if isinstance(exitstatus, int) else 3)


if os.environ.get("XDIST_WORKER_PROFILE"):
    # Developer aid: profile this worker into `<dir>/<workerid>.prof`.
    import cProfile

    _profiler = cProfile.Profile()
    _exit = os._exit

    def _profiled_exit(code, _profile_dir=os.environ["XDIST_WORKER_PROFILE"]):
        _profiler.disable()
        _profiler.dump_stats(
            os.path.join(_profile_dir, os.environ.get("PYTEST_XDIST_WORKER", "w") + ".prof")
        )
        _exit(code)

    os._exit = _profiled_exit
    _profiler.enable()
if "SUMMARY_INPUT" in globals():
    # noqa: F821 below (given by xdist-cli's summary step / controller session)
    if SUMMARY_INPUT.get("serve"):  # noqa: F821
        serve_controller(SUMMARY_INPUT)  # noqa: F821
    else:
        summarize(SUMMARY_INPUT)  # noqa: F821
else:
    main(CHANNEL_IN, CHANNEL_OUT_FD)  # noqa: F821 (globals given by the bootstrap)
