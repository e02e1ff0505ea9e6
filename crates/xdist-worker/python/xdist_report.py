"""xdist worker, part 4 of 6: what a worker's reports and its end look like on the wire.

`ReportRenderer` (a base of `WorkerPlugin`) renders everything that needs pytest objects: it
asks pytest's own hooks for each report's status letter and word and renders tracebacks,
location lines and short-summary lines, so the Rust controller prints exactly what pytest
would. `make_finish_reporter` sends the session's `finished`. Builds on `xdist_channel.py`.
"""

import io
import json

if __name__ != "__xdist_worker__":
    # Imported on its own (the unit tests): the names the embedded program shares.
    from xdist_channel import (
        EVENT_BUDGET, _cut_texts, _json_clean, _jsonable, _rough_size, wire_dict,
    )


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


class ShownNowhere(list):
    """The worker's terminal reporter's `stats[""]`: passing setup and teardown reports,
    which pytest shows nowhere (and this reporter writes to nothing), are not kept; a run
    of 5,000 tests kept 3 MB of them a worker, in pages a forked worker had to copy."""

    def append(self, item):
        pass

    def extend(self, items):
        pass


class ReportRenderer:
    """The report messages of `WorkerPlugin` (which sets `config`, `items`, `tr`, `verbose`,
    `reportchars`, `color`, `width`, `infoline` and the `want_*` switches)."""

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
            forward_late_warnings(worker)

    return FinishReporter()


def forward_late_warnings(worker):
    """Warnings issued after the session, outside pytest's capture (pytest-benchmark warns in
    `pytest_unconfigure` that xdist disables it), print to a pytest-xdist worker's stderr,
    which its terminal shows: sent as log lines, which ours shows."""
    import warnings

    def showwarning(message, category, filename, lineno, file=None, line=None):
        text = warnings.formatwarning(message, category, filename, lineno, line)
        worker.emit({"t": "log", "text": text.rstrip("\n")})
        worker.outbox.flush()

    warnings.showwarning = showwarning
