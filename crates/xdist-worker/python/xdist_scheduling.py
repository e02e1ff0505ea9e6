"""xdist worker, the controller session's scheduling part: `pytest_handlecrashitem` and a
scheduler from `pytest_xdist_make_scheduler`, for the Rust controller.

The Rust controller owns the run; these requests let Python plugins act where pytest-xdist's
`DSession` would call them. A crashed test's report is built here as `DSession.handle_crashitem`
builds it, the hook may change it and ask for a rerun (`sched.mark_test_pending`, recorded and
done by the Rust scheduler). A plugin's scheduler is driven call by call (`SchedulerDriver`):
its nodes are stand-ins whose `send_runtest_some`/`send_runtest_all`/`shutdown` (and the
seed's `send_runtest(nodeid)`/`is_ready()`) are recorded and returned as actions, each reply
carrying the scheduler's properties so the Rust side reads them without asking. Used by
`xdist_steps.py` (its `CONTROLLER_REQUESTS`); needs no other part.
"""


class SchedLog:
    """pytest-xdist's `Producer` as a scheduler gets it: callable, with sub-producers as
    attributes (`log.loadsched(...)`), silent like pytest-xdist's without tracing."""

    def __init__(self, name="dsession"):
        self._name = name

    def __call__(self, *args):
        pass

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return SchedLog("{}.{}".format(self._name, name))


class SchedNode:
    """A worker as a plugin's scheduler sees it: pytest-xdist's `WorkerController`, whose
    sends become actions for the Rust controller."""

    def __init__(self, driver, key, workerid, spec, node=None):
        import types

        self._driver = driver
        self.key = key
        # The node the lifecycle hooks got (`pytest_configure_node`), where there is one.
        self.gateway = getattr(node, "gateway", None) or types.SimpleNamespace(
            id=workerid, spec=spec)
        self.workerinput = getattr(node, "workerinput", {"workerid": workerid})
        self.config = driver.config
        self.pending = []
        self.shutting_down = False

    def __repr__(self):
        return "<WorkerController {}>".format(self.gateway.id)

    def send_runtest_some(self, indices):
        indices = [int(i) for i in indices]
        self.pending.extend(indices)
        self._driver.actions.append({"run": self.key, "indices": indices})

    def send_runtest_all(self):
        self.send_runtest_some(range(len(self._driver.collection)))

    def send_runtest(self, nodeid):
        """The seed's example sends one test by its id."""
        self.send_runtest_some([self._driver.index_of(nodeid)])

    def send_steal(self, indices):
        self._driver.actions.append({"steal": self.key, "indices": [int(i) for i in indices]})

    def shutdown(self):
        if not self.shutting_down:
            self.shutting_down = True
            self._driver.actions.append({"shutdown": self.key})

    def is_ready(self):
        """The seed's example asks before sending: a worker takes work until it holds the
        test it runs and the next one (it starts a test only once it knows the next)."""
        return not self.shutting_down and len(self.pending) < 2


class SchedulerDriver:
    """A plugin's scheduler (the seed's `Scheduling` shape), called as the Rust controller
    asks (`scheduling` requests). Each reply holds the actions its nodes recorded and the
    scheduler's properties after the call."""

    def __init__(self, scheduler, config):
        self.scheduler = scheduler
        self.config = config
        self.nodes = {}
        self.collection = []
        self._index = None
        self.actions = []

    def index_of(self, nodeid):
        if self._index is None:
            self._index = {nodeid: i for i, nodeid in enumerate(self.collection)}
        return self._index[nodeid]

    def state(self):
        s = self.scheduler
        return {
            "finished": bool(s.tests_finished), "pending": bool(s.has_pending),
            "complete": bool(s.collection_is_completed),
            "nodes": [n.key for n in s.nodes if isinstance(n, SchedNode)],
        }

    def call(self, request, controller):
        """One `Scheduling` call: the request's method with its arguments."""
        method, s = request["m"], self.scheduler
        node = self.nodes.get(request.get("node"))
        result = None
        if method == "add_node":
            node = SchedNode(self, request["node"], request["id"], request.get("spec"),
                             controller.nodes.get(request["id"]))
            self.nodes[node.key] = node
            s.add_node(node)
        elif method == "add_node_collection":
            if "ids" in request:
                self.collection, self._index = list(request["ids"]), None
            s.add_node_collection(node, list(self.collection))
        elif method == "mark_test_complete":
            index = request["index"]
            if index in node.pending:
                node.pending.remove(index)
            s.mark_test_complete(node, index, request.get("duration", 0.0))
        elif method == "mark_test_pending":
            s.mark_test_pending(self.collection[request["index"]])
        elif method == "remove_pending_tests_from_node":
            for index in request["indices"]:
                if index in node.pending:
                    node.pending.remove(index)
            s.remove_pending_tests_from_node(node, request["indices"])
        elif method == "remove_node":
            crashitem = s.remove_node(node)
            self.nodes.pop(node.key, None)
            result = self.index_of(crashitem) if crashitem is not None else None
        elif method == "schedule":
            s.schedule()
        elif method == "mark_node_shutdown":
            node.shutting_down = True
        actions, self.actions = self.actions, []
        return {"t": "scheduled", "actions": actions, "result": result, "state": self.state()}


class CrashSched:
    """The `sched` a `pytest_handlecrashitem` gets: the session's `config` and
    `mark_test_pending`, recorded for the Rust scheduler to do; anything else is the plugin
    scheduler's, when the run has one."""

    def __init__(self, config, scheduler=None):
        self.config = config
        self._scheduler = scheduler
        self.marked = []

    def mark_test_pending(self, nodeid):
        self.marked.append(nodeid)

    def __getattr__(self, name):
        if name.startswith("_") or self._scheduler is None:
            raise AttributeError(name)
        return getattr(self._scheduler, name)


def crash_report(request):
    """The report `DSession.handle_crashitem` makes for the test a worker died running."""
    from _pytest.reports import TestReport

    nodeid = request["nodeid"]
    fspath = nodeid.split("::")[0]
    return TestReport(nodeid, (fspath, None, fspath), {}, request.get("outcome", "failed"),
                      request["longrepr"], request.get("when", "???"))


def handle_crashitem(controller, request):
    """`pytest_handlecrashitem(crashitem, report, sched)`, then the report's
    `pytest_runtest_logreport` (`DSession.handle_crashitem`); replies with the report's
    outcome and longrepr as the hooks left them, the tests marked pending, and what the
    hooks printed."""
    import contextlib
    import io
    import types

    from _pytest.reports import _report_to_json

    report = crash_report(request)
    worker = request.get("worker", "")
    report.node = controller.nodes.get(worker) or types.SimpleNamespace(
        gateway=types.SimpleNamespace(id=worker), workerinput={}, config=controller.config)
    driver = getattr(controller, "scheduler_driver", None)
    sched = CrashSched(controller.config, driver.scheduler if driver else None)
    # What the hooks print goes in the reply: the Rust controller shows it in its place,
    # after the worker's `node down` line (its terminal output is not written yet).
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        controller.call("pytest_handlecrashitem", crashitem=request["nodeid"], report=report,
                        sched=sched)
        del report.node  # a controller-side attribute: workers' reports travel without it
        # Logged as a worker's report is (kept for the summary hooks: rerunfailures' -rR).
        data = dict(_report_to_json(report), **{"$report_type": "TestReport"})
        controller.report({"w": worker, "r": data})
    longrepr = report.longrepr
    return {"t": "crashitem", "outcome": report.outcome,
            "longrepr": None if longrepr is None else str(longrepr),
            "pending": sched.marked, "output": output.getvalue()}


def make_scheduler(controller, request):
    """`pytest_xdist_make_scheduler(config, log)`: the plugin's scheduler's class name and
    properties, or no name (the `--dist` mode's scheduler)."""
    scheduler = controller.call("pytest_xdist_make_scheduler", config=controller.config,
                                log=SchedLog())
    if scheduler is None:
        return {"t": "scheduler", "name": None}
    driver = controller.scheduler_driver = SchedulerDriver(scheduler, controller.config)
    return {"t": "scheduler", "name": type(scheduler).__name__, "state": driver.state()}


def scheduling(controller, request):
    return controller.scheduler_driver.call(request, controller)


def replying_with_errors(answer):
    """`answer` with the plugin's exception as an error reply: the session lives on (its
    `pytest_sessionfinish` still runs) and the Rust controller fails the run (exit 3)."""

    def guarded(controller, request):
        import traceback

        try:
            return answer(controller, request)
        except Exception:
            return {"t": "error", "error": traceback.format_exc()}

    return guarded


# pytest-rerunfailures reruns a test whose worker crashed from its `pytest_handlecrashitem`,
# counting attempts in a `ServerStatusDB` on the controller; workers are its clients
# (`sock_port`/`statusdb_token` in `workerinput`, from its `pytest_configure_node`).
RERUN_DB_KEYS = ("sock_port", "statusdb_token")


def rerun_crashed_reason(config):
    """A controller session's reason when pytest-rerunfailures would rerun crashed tests
    (`--reruns`/`--force-reruns`, or the `reruns` ini value): its crash handler runs there."""
    import sys

    rerun = sys.modules.get("pytest_rerunfailures")
    if rerun is None or not getattr(rerun, "HAS_PYTEST_HANDLECRASHITEM", False):
        return None
    if not config.pluginmanager.is_registered(rerun):
        return None
    try:
        reruns = config.getoption("force_reruns") or rerun._get_global_reruns(config)
    except (AttributeError, ValueError):
        return None
    if not reruns:
        return None
    return "pytest_rerunfailures: pytest_handlecrashitem (--reruns)"


def connect_rerun_db(config, workerinput):
    """This worker's client of the controller's rerun counts. pytest-rerunfailures connects
    it in `pytest_configure` only where pytest-xdist is active; here it is connected once the
    worker is itself (after a fork server's fork: one connection per worker)."""
    import sys

    rerun = sys.modules.get("pytest_rerunfailures")
    if rerun is None or not all(k in workerinput for k in RERUN_DB_KEYS):
        return
    db = rerun.ClientStatusDB(workerinput["sock_port"], workerinput["statusdb_token"])
    without_delay(db)
    config.failures_db = acknowledged(db)


def without_delay(db):
    """Sends `db`'s small messages at once (TCP_NODELAY). The client writes twice, then
    reads, for every test; Nagle's algorithm held the second write until the controller's
    delayed acknowledgement of the first, about 40 ms a test (pytest-rerunfailures #242)."""
    import socket

    try:
        db.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def acknowledged(db):
    """`db` (a pytest-rerunfailures client) with each test's rerun count acknowledged. The
    client sends the count before the test runs and does not wait; when the test then kills its
    worker, the crash handler read the count before the controller's reader thread had it, and
    failed a test it should rerun. A `get` on the same connection is answered only after the
    `set` before it is applied."""
    send = db.set_test_reruns

    def set_test_reruns(crashitem, reruns):
        send(crashitem, reruns)
        db.get_test_reruns(crashitem)

    db.set_test_reruns = set_test_reruns
    return db
