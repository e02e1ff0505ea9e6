# ---------------------------------------------------------------------------------------
# The fork server ("zygote"): appended to xdist_worker.py when the controller starts one
# (xdist-worker/src/fork.rs). It is a worker that configures pytest and collects once, then,
# inside `pytest_runtestloop`, forks a child per worker the controller asks for. A child
# connects back to the controller's local socket (channel, stdout, stderr; each says who it
# is with the run's secret), takes its own identity (workerinput, environment, basetemp,
# capture, faulthandler), sends its own `ready` and runs the tests it is sent like any
# worker. What the zygote reported after `ready` (the collection) travels once, on the
# zygote's channel, as ordinary event frames: the controller adds it to each child's
# channel after the child's first frame.


class RecordingChannel:
    """The zygote's outbox channel: events are kept until the fork server serves."""

    def __init__(self):
        self.events = []

    def send_events(self, events):
        self.events.extend(events)

    def recv(self):
        return None


def _frame(obj):
    data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return len(data).to_bytes(4, "big") + data


class _EventFrames:
    """Event batches onto the zygote's channel, split within the budget as a worker's."""

    def __init__(self, send):
        self.send = send

    def send_events(self, events):
        Channel.send_events(self, events)  # (defined after this part of the worker code)


class Zygote:
    """The fork server's side of one run; None-valued `ZYGOTE` in an ordinary worker."""

    def __init__(self, path, secret, in_fd, out_fd):
        self.path = path
        self.secret = secret
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.recording = RecordingChannel()
        # What each child sends itself: the recorded events up to its own `ready`.
        self.replayed = []
        self.is_zygote = True
        self.pid = os.getpid()

    @classmethod
    def from_environ(cls, channel_in, channel_out_fd):
        path = os.environ.pop("XDIST_ZYGOTE", None)
        secret = os.environ.pop("XDIST_ZYGOTE_SECRET", None)
        if not path or not secret:
            return None
        return cls(path, secret, channel_in.fileno(), channel_out_fd)

    def send(self, obj):
        self._write(_frame(obj))

    def _send_payload(self, payload):
        self._write(len(payload).to_bytes(4, "big") + payload)

    def _write(self, data):
        data = memoryview(data)
        while data:
            try:
                data = data[os.write(self.out_fd, data):]
            except BrokenPipeError:
                os._exit(0)

    @staticmethod
    def blocker():
        """Why forking is unsafe now, or None."""
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        if others:
            return "threads alive at fork time: " + ", ".join(sorted(others))
        try:
            tasks = len(os.listdir("/proc/self/task"))
        except OSError:
            tasks = 1
        if tasks > 1:
            return "{} native threads alive at fork time".format(tasks)
        torch = sys.modules.get("torch")
        cuda = getattr(torch, "cuda", None)
        try:
            if cuda is not None and (cuda.is_initialized() or cuda._is_in_bad_fork()):
                return "CUDA is initialised"
        except Exception:
            pass
        return None

    def serve(self, plugin=None, replay_exit=None):
        """Forks on request; returns only in a child, as that child's worker."""
        import select
        import signal

        # What a child needs (`_become_worker`, `_connect`), imported once here: an import
        # after the fork would be paid, and its pages written, in every child.
        import ctypes  # noqa: F401
        import faulthandler  # noqa: F401
        import socket  # noqa: F401

        self.is_zygote = False  # an exit from here on is this process's own
        reason = self.blocker() if replay_exit is None else None
        if reason:
            self.send({"t": "nofork", "reason": reason})
            os._exit(0)
        ids = [item.nodeid for item in plugin.items] if plugin is not None else []
        # What the schedulers can split the collection into: no more workers are needed.
        units = {
            "items": len(ids),
            "files": len({nodeid.split("::", 1)[0] for nodeid in ids}),
            "scopes": len({nodeid.rsplit("::", 1)[0] for nodeid in ids}),
        }
        if plugin is not None:
            plugin.outbox.flush()
        events, self.recording.events = self.recording.events, []
        cut = next((n + 1 for n, e in enumerate(events) if e.get("t") == "ready"), 0)
        self.replayed = events[:cut]
        if events[cut:]:
            _EventFrames(self._send_payload).send_events(events[cut:])
        del events
        # The children share the collected heap copy-on-write: keep the collector off it.
        gc.collect()
        gc.freeze()
        self.send(dict(units, t="forkready"))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *a: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        children = {}
        pending = b""
        while True:
            try:
                ready = select.select([self.in_fd, wake_r], [], [])[0]
            except InterruptedError:
                ready = []
            if wake_r in ready:
                os.read(wake_r, 4096)
            self._reap(children)
            if self.in_fd not in ready:
                continue
            data = os.read(self.in_fd, 65536)
            if not data:
                # The controller is done (or gone): so are the children.
                for pid in children:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                os._exit(0)
            pending += data
            while len(pending) >= 4:
                size = int.from_bytes(pending[:4], "big")
                if len(pending) < 4 + size:
                    break
                request, pending = json.loads(pending[4:4 + size]), pending[4 + size:]
                if request.get("t") != "fork":
                    continue
                pid = self._fork(request)
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for fd in (wake_r, wake_w, self.in_fd, self.out_fd):
                        os.close(fd)
                    self._become_worker(request, plugin, replay_exit)
                    return
                if pid > 0:
                    children[pid] = request["key"]
                    self.send({"t": "forked", "key": request["key"], "pid": pid})

    def _fork(self, request):
        """fork(); retried while the system is short of processes or memory."""
        import errno

        delay = 0.01
        self.forks = getattr(self, "forks", 0) + 1
        # Fault injection for the tests: this fork request fails as if out of processes.
        fail = os.environ.get("XDIST_FAIL_FORK") == str(self.forks)
        for attempt in range(8):
            try:
                if fail:
                    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
                # The worker's fork hook (a test's fork is a copy to end) must not take
                # the zygote's own children for such copies.
                self.forking = True
                try:
                    return os.fork()
                finally:
                    self.forking = False
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENOMEM) or attempt == 7:
                    self.send({"t": "fork_failed", "key": request["key"], "error": str(exc)})
                    return -1
                _sleep(delay)
                delay *= 2
        return -1

    def _reap(self, children):
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            key = children.pop(pid, None)
            if key is None:
                continue
            if os.WIFSIGNALED(status):
                self.send({"t": "exited", "key": key, "signal": os.WTERMSIG(status)})
            else:
                self.send({"t": "exited", "key": key, "code": os.waitstatus_to_exitcode(status)})

    def _connect(self, key, stream):
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        sock.sendall(_frame({"secret": self.secret, "key": key, "stream": stream, "pid": os.getpid()}))
        return sock

    def _become_worker(self, request, plugin, replay_exit):
        import ctypes
        import faulthandler
        import signal

        try:
            # Die with the fork server, as it dies with the controller (PR_SET_PDEATHSIG).
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        except Exception:
            pass
        if os.getppid() != self.pid:
            os._exit(3)
        gc.enable()
        os.environ.update(request.get("env") or {})
        if request.get("nice"):
            os.nice(int(request["nice"]))
        key = request["key"]
        chan = self._connect(key, "channel")
        # On the fds a spawned worker's channel has (3 read, 4 write), freed above, before
        # any other descriptor can take them.
        fd = chan.detach()
        for target in (3, 4):
            if fd != target:
                os.dup2(fd, target, inheritable=False)
        if fd not in (3, 4):
            os.close(fd)
        out = self._connect(key, "stdout")
        err = self._connect(key, "stderr")
        config = plugin.config if plugin is not None else None
        capman = config.pluginmanager.get_plugin("capturemanager") if config else None
        if capman is not None:
            # The zygote's capture files are shared with it: this process captures anew.
            capman.stop_global_capturing()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        out.close()
        err.close()
        # The real stderr, before capturing takes fd 2 over (as `main` does).
        # Onto the zygote's file object's fd: a new object would leave the old one to the
        # garbage collector, whose ResourceWarning a test run with `-W error` reports.
        global STACK_DUMP_FILE
        if STACK_DUMP_FILE is None:
            STACK_DUMP_FILE = os.fdopen(os.dup(2), "w")
        else:
            os.dup2(2, STACK_DUMP_FILE.fileno(), inheritable=False)
        faulthandler.enable(file=STACK_DUMP_FILE, all_threads=True)
        faulthandler.register(signal.SIGUSR1, file=STACK_DUMP_FILE, all_threads=True)
        if capman is not None:
            capman.start_global_capturing()
        # This child is the worker now: its own pid sends, fds 3/4 are its channel (the
        # fork hook points those at /dev/null in a test's fork of this child).
        global WORKER_PID, CHANNEL_FDS, FORKED_COPY
        WORKER_PID = os.getpid()
        CHANNEL_FDS = (3, 4)
        FORKED_COPY = False
        channel = Channel(os.fdopen(3, "rb"), 4)
        payload = channel.recv()
        if payload is None:
            os._exit(3)
        bootstrap = json.loads(payload)
        events, self.replayed = self.replayed, []
        if plugin is not None:
            plugin.outbox.channel = plugin.queue.channel = channel
            self._take_identity(plugin, bootstrap)
            plugin.outbox.start_flusher()
            reader = threading.Thread(
                target=plugin.queue.read_commands, name="xdist-channel", daemon=True
            )
            reader.start()
            # Stacks are dumped by signalling this child's own channel thread.
            plugin.stack_thread = reader.native_id
        for event in events:
            if event.get("t") == "ready":
                event["info"] = dict(event["info"], pid=os.getpid())
                if plugin is not None:
                    event["stack_thread"] = plugin.stack_thread
        # Always one first frame (maybe `[]`): the controller adds the collection after it.
        channel.send_events(events)
        if replay_exit is not None:
            os._exit(replay_exit)

    @staticmethod
    def _take_identity(plugin, bootstrap):
        """This child's `workerinput`, environment, basetemp and header line."""
        workerinput = plugin.workerinput
        workerinput.clear()
        workerinput.update(from_wire(bootstrap["workerinput"]))
        workerinput.missing = set()
        os.environ["PYTEST_XDIST_WORKER"] = workerinput["workerid"]
        os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(workerinput["workercount"])
        os.environ["PYTEST_XDIST_TESTRUNUID"] = workerinput["testrunuid"]
        plugin.bootstrap.update({k: v for k, v in bootstrap.items() if k != "workerinput"})
        config = plugin.config
        if bootstrap.get("basetemp"):
            config.option.basetemp = bootstrap["basetemp"]
            try:
                from _pytest.tmpdir import TempPathFactory

                config._tmp_path_factory = TempPathFactory.from_config(config, _ispytest=True)
            except Exception:
                pass
        plugin.infoline = "[{}] {} -- Python {} {}".format(
            workerinput["workerid"], sys.platform,
            ".".join(str(x) for x in sys.version_info[:3]), sys.executable,
        )
        # The children keep the zygote's heap frozen (shared copy-on-write).
        plugin.heap.collecting = False
