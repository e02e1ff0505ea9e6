"""xdist worker, part 5 of 6: one pytest session driven by the xdist controller.

`WorkerPlugin` turns a pytest session into an xdist worker (it owns `pytest_runtestloop`;
`ReportRenderer` renders its reports). `xdist_start.py` (`main`) starts the session. Builds
on every other part, `xdist_zygote.py` (the fork server) included.
"""

import gc
import json
import os
import sys

if __name__ != "__xdist_worker__":
    # Imported on its own (the unit tests): the names the embedded program shares. Values
    # of the process-wide state are copies here; `main` runs only in the embedded program.
    from xdist_channel import (
        FORKED_COPY, LINGER, PROTOCOL_VERSION, SHUTDOWN, ZYGOTE, _json_clean, _perf_counter,
        leave_forked_copy,
    )
    from xdist_report import NullFile, ReportRenderer, ShownNowhere
    from xdist_scheduling import connect_rerun_db
    from xdist_standin import XdistOptions
    from xdist_steps import (
        controller_plugins, controller_reasons, drop_terminal_owners, load_reports,
        run_summary_hooks, summary_plugins, summary_report_keys,
    )


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


class WorkerPlugin(XdistOptions, ReportRenderer):
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
            self.tr.stats.setdefault("", ShownNowhere())
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
        drop_terminal_owners(config)
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
            "randomly_seed": self._randomly_seed(config),
            "failures_shown_live": bool(getattr(config.option, "instafail", False)),
            **self._file_options(config),
        }

    def _randomly_seed(self, config):
        """The seed xdist chose for pytest-randomly (workerinput), when the plugin is active."""
        if not config.pluginmanager.has_plugin("randomly"):
            return None
        seed = self.workerinput.get("randomly_seed")
        return seed if isinstance(seed, int) else None

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
        connect_rerun_db(config, self.workerinput)
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
