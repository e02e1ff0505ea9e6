"""xdist worker, part 6 of 6: the program's start.

`main` is a worker's life: the bootstrap frame, the process set up as a pytest-xdist worker
(environment, import path, the `xdist` stand-in), pytest configured with `WorkerPlugin`, then
pytest's own main loop, and an exit that lets a fork server serve on. The end of this file
starts the program: a worker, or a controller-side step when `SUMMARY_INPUT` is given.
"""

import json
import os
import sys
import threading

if __name__ != "__xdist_worker__":
    # Imported on its own (the unit tests): the names the embedded program shares.
    from xdist_channel import (
        PROTOCOL_VERSION, ZYGOTE, Outbox, WorkQueue, from_wire, open_channel, watch_stacks,
    )
    from xdist_report import make_finish_reporter
    from xdist_session import WorkerInput, WorkerPlugin, fatal
    from xdist_standin import StandinFinder
    from xdist_steps import serve_controller, summarize
    from xdist_zygote import Zygote


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
    """The worker's life: the bootstrap frame, the process set up as pytest-xdist's worker,
    pytest configured with the worker plugin, then pytest's own main loop."""
    global ZYGOTE
    channel = open_channel(channel_in, channel_out_fd)
    outbox = Outbox(channel)
    bootstrap = read_bootstrap(channel, outbox)
    ZYGOTE = Zygote.from_environ(channel_in, channel_out_fd)
    if ZYGOTE is not None:
        outbox.channel = ZYGOTE.recording
    workerinput = bootstrap["workerinput"] = WorkerInput(from_wire(bootstrap["workerinput"]))
    prepare_process(bootstrap, workerinput)
    pytest = import_pytest(outbox)
    watch_stacks()
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
    config = configure(pytest, bootstrap, worker, outbox)
    config.workerinput = workerinput
    config.workeroutput = {}
    exitstatus = run_session(pytest, config, worker, outbox)
    outbox.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    exit_worker(int(exitstatus) if isinstance(exitstatus, int) else 3)


def read_bootstrap(channel, outbox):
    """Frame 1: what the controller tells this worker (its protocol must be ours)."""
    payload = channel.recv()
    if payload is None:
        os._exit(3)
    bootstrap = json.loads(payload)
    if bootstrap.get("protocol") != PROTOCOL_VERSION:
        fatal(outbox, "protocol", "worker speaks protocol {} but the controller sent {}".format(
            PROTOCOL_VERSION, bootstrap.get("protocol")))
        os._exit(3)
    return bootstrap


def prepare_process(bootstrap, workerinput):
    """The environment and import path a pytest-xdist worker has before pytest starts."""
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


def import_pytest(outbox):
    """pytest, or the worker ends with a `fatal` the controller shows once (exit 4)."""
    try:
        import pytest
    except ImportError as exc:
        fatal(outbox, "no_pytest", "{}: {}".format(type(exc).__name__, exc))
        exit_worker(4)
    major = int(pytest.__version__.split(".")[0])
    if major < 7:
        fatal(outbox, "old_pytest", "pytest {} is too old".format(pytest.__version__))
        exit_worker(4)
    return pytest


def configure(pytest, bootstrap, worker, outbox):
    """pytest's config for this worker's arguments, with the options a worker overrides."""
    from _pytest.config import _prepareconfig

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
    opt.loadgroup = bootstrap.get("dist", "load") == "loadgroup"
    opt.looponfail = False
    opt.usepdb = False
    opt.dist = "no"
    opt.distload = False
    opt.numprocesses = None
    opt.maxprocesses = None
    if bootstrap.get("basetemp"):
        opt.basetemp = bootstrap["basetemp"]
    return config


def run_session(pytest, config, worker, outbox):
    """pytest's main loop; returns the exit status (an error after the session keeps it)."""
    try:
        return config.hook.pytest_cmdline_main(config=config)
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
        return exitstatus


# The program starts here; imported on its own, this module only defines.
if __name__ == "__xdist_worker__":
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
