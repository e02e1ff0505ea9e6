#!/usr/bin/env python3
"""How little memory a fork server can use, measured without xdist.

Usage:
    python3 bench/fork_bound.py --python PY --suite DIR [-n N] [--interleave]

PY is a Python with pytest. One pytest process collects DIR, runs `gc.collect()` and
`gc.freeze()` and forks N children; each child runs 1/N of the items (a contiguous slice, or
every N-th item with --interleave) with pytest's own `pytest_runtest_protocol`. Once every
child is done, and before any exits, the summed PSS of the server and the children is read
from /proc. The same is then done with N separate pytest processes (each collects everything
and runs its part): what spawned workers use. No xdist code runs, so the ratio printed is the
least a fork server can reach with pytest on this Python, the bound issue 13's 0.6x target
meets (README: "Worker PSS"). Linux only; Python 3.11 stdlib.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import pss_kb

PLUGIN = r'''
import gc, json, os


def run_part(session, part):
    hook = session.config.hook
    for k, item in enumerate(part):
        hook.pytest_runtest_protocol(item=item, nextitem=part[k + 1] if k + 1 < len(part) else None)


def part_of(items, k, n, interleave):
    return items[k::n] if interleave else items[k * len(items) // n:(k + 1) * len(items) // n]


def pytest_runtestloop(session):
    n, k = int(os.environ["BOUND_N"]), int(os.environ.get("BOUND_K", "-1"))
    interleave = os.environ.get("BOUND_INTERLEAVE") == "1"
    items = session.items
    # pytest captures fds 0-2 around the tests: the runner's pipes are these.
    report_fd, go_fd = int(os.environ["BOUND_REPORT_FD"]), int(os.environ["BOUND_GO_FD"])
    if k >= 0:  # one of N spawned processes: run its part, say so, wait to be read
        run_part(session, part_of(items, k, n, interleave))
        os.write(report_fd, b"[]\n")
        os.read(go_fd, 1)
        os._exit(0)
    gc.collect()
    gc.freeze()
    done_r, done_w = os.pipe()
    go_r, go_w = os.pipe()
    children = []
    for k in range(n):
        pid = os.fork()
        if pid == 0:
            gc.enable()
            run_part(session, part_of(items, k, n, interleave))
            os.write(done_w, b"x")
            os.read(go_r, 1)
            os._exit(0)
        children.append(pid)
    for _ in children:
        os.read(done_r, 1)
    # Every part is done and no child has exited: the runner reads the PSS now.
    os.write(report_fd, json.dumps(children).encode() + b"\n")
    os.read(go_fd, 1)
    os.write(go_w, b"x" * n)
    for pid in children:
        os.waitpid(pid, 0)
    os._exit(0)
'''


class Run:
    """A pytest process with the plugin, and the two pipes it reports and waits on."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]):
        report_r, report_w = os.pipe()
        go_r, self.go_w = os.pipe()
        env = dict(env, BOUND_REPORT_FD=str(report_w), BOUND_GO_FD=str(go_r))
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, pass_fds=(report_w, go_r),
                                     stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        os.close(report_w)
        os.close(go_r)
        self.report = os.fdopen(report_r)

    def read_line(self) -> str:
        return self.report.readline().strip()

    def finish(self) -> None:
        try:
            os.write(self.go_w, b"x")
        except OSError:
            pass
        os.close(self.go_w)
        self.report.close()
        self.proc.wait()


def pss_mb(pids: list[int]) -> float:
    return sum(pss_kb(pid) for pid in pids) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True, help="a Python with pytest")
    ap.add_argument("--suite", required=True, type=Path, help="the test suite's directory")
    ap.add_argument("-n", type=int, default=2, help="workers (default 2)")
    ap.add_argument("--interleave", action="store_true", help="every N-th item to each worker")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("-n must be at least 1")
    if not args.suite.is_dir():
        ap.error(f"--suite {args.suite}: not a directory")
    # Absolute (the runs' working directory is the suite), not resolved (a venv's python is
    # a link that must stay one).
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    with tempfile.TemporaryDirectory(prefix="fork-bound-") as tmp:
        Path(tmp, "fork_bound_plugin.py").write_text(PLUGIN)
        env = dict(os.environ, PYTHONPATH=tmp, BOUND_N=str(args.n),
                   BOUND_INTERLEAVE="1" if args.interleave else "0")
        cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "fork_bound_plugin"]
        fork_run = Run(cmd, args.suite, env)
        children = json.loads(fork_run.read_line() or "null")
        if not children:
            sys.exit("fork_bound: the forked run reported nothing (does the suite collect?)")
        server, workers = pss_mb([fork_run.proc.pid]), pss_mb(children)
        fork_run.finish()
        spawned = [Run(cmd, args.suite, dict(env, BOUND_K=str(k))) for k in range(args.n)]
        if any(run.read_line() != "[]" for run in spawned):
            sys.exit("fork_bound: a spawned run ended before its tests did")
        spawn = pss_mb([run.proc.pid for run in spawned])
        for run in spawned:
            run.finish()
    tree = server + workers
    print(f"fork_bound {' '.join(sys.argv[1:])}: forked: server {server:.1f} MB + workers "
          f"{workers:.1f} MB = {tree:.1f} MB; spawned {spawn:.1f} MB; "
          f"tree / spawned {tree / spawn:.2f}x, workers / spawned {workers / spawn:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
