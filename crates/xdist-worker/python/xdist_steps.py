"""xdist worker, part 3 of 6: the controller's Python side.

The summary step (`pytest_terminal_summary` hooks the Rust controller cannot render itself),
what a worker tells the controller about them (`summary_plugins`, `controller_reasons`...),
and `ControllerSession`: started with `SUMMARY_INPUT` instead of a channel (see the end of
`xdist_start.py`), this program is the summary step's process or the run-long controller
session. Builds on `xdist_channel.py` (wire tags) and `xdist_standin.py`.
"""

import io
import json
import os
import sys

if __name__ != "__xdist_worker__":
    # Imported on its own (the unit tests): the names the embedded program shares.
    from xdist_channel import from_wire, wire_dict
    from xdist_scheduling import (
        handle_crashitem, make_scheduler, replying_with_errors, rerun_crashed_reason, scheduling,
    )
    from xdist_standin import StandinFinder, XdistOptions


# Their implementations the controller does render: pytest's own (FAILURES, short summary,
# --durations, ...) and pytest-cov's report (xdist-cli's cov.rs).
NATIVE_SUMMARY_MODULES = ("_pytest", "pytest_cov")


def result_pipe(data):
    """The step's result pipe (`result_fd`, summary.rs's RESULT_FD): its replies, one JSON
    value a line, apart from what plugins print. Not inherited by processes they start."""
    fd = data["result_fd"]
    os.set_inheritable(fd, False)
    return os.fdopen(fd, "w", encoding="utf-8")


def _module_root(plugin):
    import types

    if isinstance(plugin, types.ModuleType):
        name = plugin.__name__
    else:
        name = type(plugin).__module__
    return (name or "").split(".")[0]


def _native_summary(impl):
    """A `pytest_terminal_summary` the Rust controller renders itself: pytest's, pytest-cov's,
    and the terminal reporter's whichever plugin replaced it (pytest-instafail's,
    pytest-sugar's: the terminal is the Rust controller's)."""
    return (_module_root(impl.plugin) in NATIVE_SUMMARY_MODULES
            or impl.plugin_name == "terminalreporter")


# Plugins that draw the whole terminal themselves, by module: pytest-sugar's status letters
# (one for every phase of a test) are for its own reporter. The Rust controller draws the
# terminal as pytest does, so in a worker they are left out, and its counts stay pytest's.
TERMINAL_OWNERS = ("pytest_sugar",)


def drop_terminal_owners(config):
    pm = config.pluginmanager
    for plugin in pm.get_plugins():
        if _module_root(plugin) in TERMINAL_OWNERS:
            pm.unregister(plugin)


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
        if _native_summary(impl):
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
        if not _native_summary(impl):
            names.append(str(impl.plugin_name))
    return names


def load_report(config, entry, node=None):
    """One report from its `{"w": worker id, "r": serialized}` entry, with `node` as its
    `node` (pytest-xdist's controller gives each report its worker's; its header line in
    `longreprtext`); None if no plugin can load it."""
    data = entry["r"]
    if isinstance(data.get("longrepr"), list):
        data["longrepr"] = tuple(data["longrepr"])  # a skip's (path, line, reason)
    rep = config.hook.pytest_report_from_serializable(config=config, data=data)
    if rep is not None and node is not None:
        rep.node = node
    return rep


def load_reports(config, reports, workerinfo):
    """The run's reports from their `{"w": worker id, "r": serialized}` JSON texts."""
    import types

    nodes = {
        wid: types.SimpleNamespace(gateway=types.SimpleNamespace(id=wid), workerinfo=info)
        for wid, info in workerinfo.items()
    }
    loaded = []
    for text in reports:
        entry = json.loads(text)
        rep = load_report(config, entry, nodes.get(entry.get("w")))
        if rep is not None:
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
    "pytest_xdist_node_collection_finished", "pytest_xdist_auto_num_workers",
    "pytest_xdist_make_scheduler", "pytest_handlecrashitem",
)
# Their controller hooks need no controller session: pytest-cov's and pytest-randomly's
# `workerinput` come from xdist-cli (cov.rs, randomly.rs); pytest-metadata's
# `pytest_testnodedown` only feeds pytest-html's environment table.
HANDLED_CONTROLLER_MODULES = NATIVE_SUMMARY_MODULES + (
    "pytest_randomly", "pytest_metadata", "__xdist_worker__",
)
# Plugins that register their controller hooks only where pytest-xdist is active
# (`hasplugin("xdist")`, false in a worker) are found by these words in their module.
# pytest-rerunfailures' need none (its workers keep their own failure counts, its `-rR`
# section comes from the summary step), unless it reruns crashed tests (`rerun_crashed_reason`).
CONTROLLER_HOOK_DEFS = ("def pytest_configure_node(", "def pytest_testnodedown(")
SELF_SUFFICIENT_MODULES = HANDLED_CONTROLLER_MODULES + ("pytest_rerunfailures",)
# Session hooks a conftest may run differently on the controller, and the words that tell
# it apart from a worker.
SESSION_HOOKS = ("pytest_configure", "pytest_sessionstart", "pytest_sessionfinish",
                 "pytest_unconfigure")
# (`hasplugin("dsession")`: the seed's examples register their controller plugins there.)
CONTROLLER_MARKERS = ("workerinput", "is_xdist_controller", "is_xdist_master",
                      "get_xdist_worker_id", "PYTEST_XDIST_WORKER", '"dsession"')


# Plugins that act on each report as it reaches pytest-xdist's controller, by module, and
# whether this run turns them on (else they cost no controller session).
LIVE_REPORT_PLUGINS = {
    "pytest_github_actions_annotate_failures": lambda config: (
        os.environ.get("GITHUB_ACTIONS") == "true"),
    "pytest_instafail": lambda config: bool(getattr(config.option, "instafail", False)),
}


def live_report_reasons(config):
    """The live-report plugins this run turns on (`LIVE_REPORT_PLUGINS`)."""
    pm = config.pluginmanager
    reasons = []
    for plugin in pm.get_plugins():
        turned_on = LIVE_REPORT_PLUGINS.get(_module_root(plugin))
        name = pm.get_name(plugin)
        if turned_on is not None and turned_on(config) and name not in reasons:
            reasons.append("{}: reports as they arrive".format(name))
    return reasons


def controller_reasons(config):
    """Why this run needs a `ControllerSession` from its start: plugins implementing hooks
    only pytest-xdist's controller calls (`pytest_configure_node`: pytest-xdist workers get
    what they add to `workerinput`), and conftests whose session hooks check whether they
    run on a worker (controller-side setup, environment for the workers, cleanup)."""
    import types

    reasons = live_report_reasons(config)
    pm = config.pluginmanager
    for name in CONTROLLER_HOOKS:
        for impl in getattr(config.hook, name).get_hookimpls():
            if _module_root(impl.plugin) not in HANDLED_CONTROLLER_MODULES:
                reasons.append("{}: {}".format(impl.plugin_name, name))
    rerun = rerun_crashed_reason(config)
    if rerun:
        reasons.append(rerun)
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


class DSessionStandin:
    """Registered as "dsession", the name of pytest-xdist's controller plugin, so that
    `config.pluginmanager.hasplugin("dsession")` tells plugins they are on the controller.
    It implements no hooks: the Rust controller does DSession's work."""


class XSpecStandin:
    """execnet's `XSpec` as pytest-xdist's hooks get it: `str()` is the spec's text, its
    `key=value` parts are attributes (None when absent), `id` the worker's id."""

    def __init__(self, spec, workerid):
        self._spec, self.env, self.id = spec, {}, None
        for part in spec.split("//"):
            key, eq, value = part.partition("=")
            if key.startswith("env:"):
                self.env[key[4:]] = value
            elif key:
                setattr(self, key, value if eq else True)
        if workerid is not None:
            self.id = workerid

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return None

    def __repr__(self):
        return "<XSpec {!r}>".format(self._spec)

    def __str__(self):
        return self._spec


def _instafail_report(reporter, report):
    """pytest-instafail's own addition to pytest's reporter: each failure as it arrives."""
    if report.failed and not hasattr(report, "wasxfail"):
        # The Rust controller's progress line is open (`-v` too): end it.
        reporter._tw.line()
        reporter.print_failure(report)


# Terminal reporters that replace pytest's ("terminalreporter"), by module: the Rust
# controller owns the terminal, so of each only what it adds per report runs here.
# pytest-sugar's adds nothing it does not draw itself: it stays out.
LIVE_TERMINAL_REPORTERS = {"pytest_instafail": _instafail_report}


class ControllerSession:
    """What pytest-xdist's controller is: a pytest session of the user's arguments, plugins
    and initial conftests, without `workerinput`. Only plugins pytest does not own take part
    (pytest's own reporting is the Rust controller's; pytest-cov's is cov.rs's), and they get
    the calls pytest-xdist's controller makes, as the run goes: `pytest_sessionstart`,
    `pytest_xdist_auto_num_workers`, `pytest_xdist_setupnodes`, for each worker
    `pytest_xdist_newgateway`, `pytest_configure_node`, `pytest_testnodeready`,
    `pytest_xdist_node_collection_finished`, then each report's
    `pytest_runtest_logreport`/`pytest_collectreport` and each warning's
    `pytest_warning_recorded` as they arrive, `pytest_testnodedown` as each worker ends;
    `pytest_sessionfinish` and `pytest_terminal_summary` at the end.
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
        # Conftests register their controller-side plugins where `hasplugin("dsession")`
        # (the seed's examples do). pytest-xdist registers its DSession in a trylast
        # `pytest_configure`, too late for those checks; ours is there before configure.
        self.config.pluginmanager.register(DSessionStandin(), "dsession")
        self.config._do_configure()
        pm = self.pm = self.config.pluginmanager
        # pytest-randomly's seed for the workers comes from randomly.rs; the terminal is
        # the Rust controller's, whichever plugin replaced pytest's reporter.
        reporter = pm.get_plugin("terminalreporter")
        self.native = [plugin for plugin in pm.get_plugins()
                       if _module_root(plugin) in NATIVE_SUMMARY_MODULES + ("pytest_randomly",)
                       or plugin is reporter]
        self.live_reporter = LIVE_TERMINAL_REPORTERS.get(_module_root(reporter))
        self.session = Session.from_config(self.config)
        # Each worker's node, made by the first hook that names it: later hooks get the
        # same one. `down`: the workers `pytest_testnodedown` was called for.
        self.nodes, self.down = {}, set()
        # Every report and warning so far (the summary hooks see the whole run).
        self.reports, self.warnings = [], []

    def call(self, name, **kwargs):
        return self.pm.subset_hook_caller(name, remove_plugins=self.native)(**kwargs)

    def start(self):
        self.call("pytest_sessionstart", session=self.session)

    def node(self, workerid, spec=None):
        """Worker `workerid`'s node, as pytest-xdist's `WorkerController` looks to hooks."""
        import types

        node = self.nodes.get(workerid)
        if node is None:
            gateway = types.SimpleNamespace(id=workerid, spec=XSpecStandin(spec or "", workerid))
            node = types.SimpleNamespace(
                workerinput={"workerid": workerid}, config=self.config, gateway=gateway,
                workeroutput={}, workerinfo={},
            )
            self.nodes[workerid] = node
        return node

    def auto_num_workers(self, kind):
        """`pytest_xdist_auto_num_workers` for `-n auto`/`-n logical` (`kind`): what the
        first plugin answered, None when none did (the default count then)."""
        option = self.config.option
        before, option.numprocesses = option.numprocesses, kind
        count = self.call("pytest_xdist_auto_num_workers", config=self.config)
        option.numprocesses = count if count else before
        return count

    def setupnodes(self, specs):
        """`pytest_xdist_setupnodes` with the run's specs, their ids allocated as execnet's
        (a spec's own `id=`, else the next `gwN`)."""
        xspecs, n = [], 0
        for spec in specs:
            xspec = XSpecStandin(spec, None)
            if xspec.id is None:
                xspec.id, n = "gw{}".format(n), n + 1
            xspecs.append(xspec)
        self.call("pytest_xdist_setupnodes", config=self.config, specs=xspecs)

    def configure_node(self, workerid, spec, workerinput):
        """`pytest_xdist_newgateway`, then `pytest_configure_node`: the worker's
        `workerinput` as the plugins leave it."""
        node = self.node(workerid, spec)
        node.workerinput = dict(workerinput)
        self.call("pytest_xdist_newgateway", gateway=node.gateway)
        self.call("pytest_configure_node", node=node)
        return wire_dict(node.workerinput)

    def testnodeready(self, workerid, workerinfo):
        node = self.node(workerid)
        node.workerinfo = workerinfo or {}
        self.call("pytest_testnodeready", node=node)

    def collection_finished(self, workerid, ids):
        self.call("pytest_xdist_node_collection_finished", node=self.node(workerid), ids=ids)

    def testnodedown(self, down):
        """`pytest_testnodedown` once for the worker `down` describes (`{"id", "spec",
        "workeroutput", "workerinfo", "error"}`)."""
        if down["id"] in self.down:
            return
        self.down.add(down["id"])
        node = self.node(down["id"], down.get("spec"))
        node.workeroutput = from_wire(down.get("workeroutput") or {})
        node.workerinfo = down.get("workerinfo") or node.workerinfo
        self.call("pytest_testnodedown", node=node, error=down.get("error"))

    def report(self, entry, live=True):
        """A worker's report (`{"w", "r"}`): its hooks as pytest-xdist's controller calls
        them when it arrives (`live`), and kept for the summary."""
        from _pytest.reports import CollectReport

        worker = entry.get("w")
        rep = load_report(self.config, entry, self.node(worker) if worker else None)
        if rep is None:
            return
        self.reports.append(rep)
        if not live:
            return
        collect = isinstance(rep, CollectReport)
        if collect:
            self.call("pytest_collectreport", report=rep)
        else:
            self.call("pytest_runtest_logreport", report=rep)
        if self.live_reporter is not None:
            self.live_reporter(self.pm.get_plugin("terminalreporter"), rep)

    def warning(self, text, live=True):
        """A warning (`WarningRecord::summary` JSON text): `pytest_warning_recorded`."""
        self.warnings.append(text)
        if not live:
            return
        warning = json.loads(text)
        location = warning.get("location")
        recorded = self.pm.subset_hook_caller(
            "pytest_warning_recorded", remove_plugins=self.native
        )
        recorded.call_historic(kwargs=dict(
            warning_message=_warning_message(warning), when=warning["when"],
            nodeid=warning["nodeid"], location=tuple(location) if location else None,
        ))

    def finish(self, data, replay):
        """The end of the run: what was not sent as it happened (`data`'s reports,
        warnings and finished workers) first, through the hooks when `replay`; returns
        what the `pytest_terminal_summary` hooks wrote."""
        config, session = self.config, self.session
        exitstatus = data.get("exitstatus", 0)
        for workerid, info in data.get("workerinfo", {}).items():
            node = self.node(workerid)
            node.workerinfo = node.workerinfo or info
        for text in data.get("reports", []):
            self.report(json.loads(text), live=replay)
        for text in data.get("warnings", []):
            self.warning(text, live=replay)
        if replay:
            # They started with the run, not with this process.
            for plugin in self.pm.get_plugins():
                attr = PLUGIN_START_TIMES.get(_module_root(plugin))
                started = data.get("started")
                if started and attr and isinstance(getattr(plugin, attr, None), float):
                    setattr(plugin, attr, started)
            # pytest-xdist's controller counts the collection the workers sent.
            session.testscollected = data.get("collected", 0)
            for down in data.get("nodes", []):
                self.testnodedown(down)
            session.exitstatus = exitstatus
            self.call("pytest_sessionfinish", session=session, exitstatus=exitstatus)
        if not data.get("summary", True):
            return ""
        return run_summary_hooks(
            config, self.reports, self.warnings, exitstatus, summary_plugins(config),
            data.get("width", 80), data.get("color"),
        )

    def close(self):
        self.config._ensure_unconfigure()


def summarize(data):
    """The summary step's slow path, when no worker is left to run it (see `linger`), or
    when controller-only plugins need a controller (`mirror`): the hooks' text, as one JSON
    string, on the result pipe (nothing is read back out of what the hooks print). A
    `ControllerSession` started after the tests."""
    results = result_pipe(data)
    controller = ControllerSession(data)
    try:
        if data.get("mirror"):
            controller.start()
        text = controller.finish(data, replay=bool(data.get("mirror")))
    finally:
        controller.close()
    with results:
        json.dump(text, results)


def serve_controller(data):
    """A `ControllerSession` for the whole run, when plugins or conftests act on
    pytest-xdist's controller (`controller_reasons`): started before the workers, it answers
    the Rust controller's requests, one JSON line each way: requests on stdin, replies on
    the result pipe (what plugins print goes to the terminal)."""

    # pytest's capturing takes fd 0 over while the session runs: keep our own.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = result_pipe(data)

    def reply(message):
        # What the hooks printed first: the controller goes on once it has the reply.
        sys.stdout.flush()
        sys.stderr.flush()
        replies.write(json.dumps(message) + "\n")
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
            answer = CONTROLLER_REQUESTS[request["t"]](controller, request)
            if answer is not None:
                reply(answer)
            else:
                # What a one-way message's hooks printed shows as they run.
                sys.stdout.flush()
                sys.stderr.flush()
            if request["t"] == "finish":
                break
    finally:
        controller.close()


def _configure_node(controller, request):
    workerinput = controller.configure_node(
        request["id"], request.get("spec"), request["workerinput"]
    )
    return {"t": "workerinput", "workerinput": workerinput}


def _auto_num_workers(controller, request):
    return {"t": "workers", "count": controller.auto_num_workers(request["kind"])}


def _setupnodes(controller, request):
    controller.setupnodes(request["specs"])
    return {"t": "done"}


def _finish(controller, request):
    text = controller.finish(request, replay=True)
    exitstatus = getattr(controller.session, "exitstatus", None)
    return {"t": "summary", "text": text,
            "exitstatus": int(exitstatus) if exitstatus is not None else None}


# The Rust controller's requests to a `ControllerSession` (`"t"` names one), and what
# answers each: a dict is the reply line; None sends none (one-way messages: the run's
# events as they happen, which the controller does not wait for).
CONTROLLER_REQUESTS = {
    "configure_node": _configure_node,
    "auto_num_workers": _auto_num_workers,
    "setupnodes": _setupnodes,
    "testnodeready": lambda c, r: c.testnodeready(r["id"], r.get("workerinfo")),
    "collection_finished": lambda c, r: c.collection_finished(r["id"], r["ids"]),
    "report": lambda c, r: c.report(r),
    "warning": lambda c, r: c.warning(r["warning"]),
    "testnodedown": lambda c, r: c.testnodedown(r),
    "finish": _finish,
    "crashitem": replying_with_errors(handle_crashitem),
    "make_scheduler": replying_with_errors(make_scheduler),
    "scheduling": replying_with_errors(scheduling),
}
