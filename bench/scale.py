#!/usr/bin/env python3
"""Controller throughput: xdist driven by many synthetic workers.

Usage:
    python3 bench/scale.py [--workers 2,8,64,256,1024] [--tests 100000] [--runs 3]
                           [--heavy-runs 1] [--no-build] [--out bench/results/scale.md]

What it does:
  1. builds release xdist and the synthetic worker (`cargo build --release -p xdist-cli
     -p synthetic-worker`; `CARGO_TARGET_DIR` is honoured, default `target/`);
  2. for each worker count W runs, in an empty temporary directory,
         xdist -n W --python <synthetic-worker> -p no:cacheprovider -q
     with `XDIST_SYNTH_TESTS=<tests>`: the synthetic worker (bench/synthetic-worker) speaks the
     real protocol but "runs" each test at once, so the run measures the controller (and the
     channel) alone;
  3. checks every run (exit 0, `<tests> passed` on the summary line) and prints a Markdown
     table, also written to bench/results/scale.md.

What is measured, per run (the median run by wall time is shown; W >= 1024 runs
`--heavy-runs` times):
  - wall: spawn to exit of `xdist`;
  - reports/s: tests / wall (each test sends one `call` report);
  - controller CPU: user+sys of the `xdist` process alone. `os.wait4` gives the CPU time of
    the process plus every child it reaped (the workers); the children's share is read from
    `/proc/<pid>/stat` (cutime+cstime), polled every 5 ms, last sample taken after the
    controller had reaped every worker (it waits for all of them before it prints the
    summary), and subtracted. "ctl CPU %" is that time / wall (100% = one core busy);
  - workers CPU: that children's share (all synthetic workers together);
  - controller peak RSS: VmHWM from `/proc/<pid>/status`, polled every 5 ms.

Python 3.8+ stdlib only, Linux only (/proc).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def build() -> None:
    log("building release xdist and synthetic-worker")
    subprocess.run(
        ["cargo", "build", "--release", "-p", "xdist-cli", "-p", "synthetic-worker"],
        cwd=ROOT, check=True,
    )


def raise_limits(workers: int) -> None:
    """About 4 descriptors per worker (2 channel pipes, stdout, stderr) plus slack."""
    want = 8 * workers + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            log(f"warning: open-files limit {new} < {want} (hard limit)")


class Sampler(threading.Thread):
    """Polls /proc/<pid>/stat and /status until the process is gone."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.children_ticks = 0  # cutime + cstime, last sample
        self.self_ticks = 0  # utime + stime, last sample
        self.hwm_kb = 0
        self.threads = 0
        self.stop = threading.Event()

    def run(self) -> None:
        stat = f"/proc/{self.pid}/stat"
        status = f"/proc/{self.pid}/status"
        while not self.stop.is_set():
            try:
                with open(stat) as f:
                    text = f.read()
                with open(status) as f:
                    st = f.read()
            except OSError:
                return
            # Fields after the command name (which may hold spaces), counted from field 3.
            fields = text[text.rindex(")") + 2:].split()
            if fields[0] == "Z":
                return  # exited: the zombie's times are final but wait4 reports them
            utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
            self.self_ticks = utime + stime
            self.children_ticks = cutime + cstime
            m = re.search(r"^VmHWM:\s+(\d+)", st, re.M)
            if m:
                self.hwm_kb = max(self.hwm_kb, int(m.group(1)))
            m = re.search(r"^Threads:\s+(\d+)", st, re.M)
            if m:
                self.threads = max(self.threads, int(m.group(1)))
            time.sleep(0.005)


def proc_cpu(pid: int) -> float:
    """utime + stime of `pid` so far, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_once(xdist: Path, worker: Path, workers: int, tests: int, timeout: float) -> dict:
    env = dict(os.environ)
    for var in ("PYTEST_ADDOPTS", "PY_COLORS", "FORCE_COLOR", "XDIST_PYTHON"):
        env.pop(var, None)
    env["NO_COLOR"] = "1"
    env["XDIST_SYNTH_TESTS"] = str(tests)
    cmd = [str(xdist), "-n", str(workers), "--python", str(worker),
           "-p", "no:cacheprovider", "-q"]
    with tempfile.TemporaryDirectory(prefix="xdist-scale-") as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = Sampler(proc.pid)
        sampler.start()
        chunks: list[bytes] = []
        first = {}

        def read_output() -> None:
            # The first progress letter marks the end of startup (spawn + collection).
            while True:
                data = proc.stdout.read1(65536)
                if not data:
                    return
                prev = chunks[-1][-1:] if chunks else b"\n"
                if not first and re.search(rb"(^|\n)\.", prev + data):
                    first["t"] = time.perf_counter()
                    first["cpu"] = proc_cpu(proc.pid)
                chunks.append(data)

        reader = threading.Thread(target=read_output, daemon=True)
        reader.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
        reader.join()
        proc.stdout.close()
        text = b"".join(chunks).decode(errors="replace")
    total_cpu = ru.ru_utime + ru.ru_stime
    children_cpu = sampler.children_ticks / CLK_TCK
    ctl_cpu = max(total_cpu - children_cpu, sampler.self_ticks / CLK_TCK)
    startup = first.get("t", start + wall) - start
    run_wall = max(wall - startup, 1e-9)
    run_cpu = max(ctl_cpu - first.get("cpu", ctl_cpu), 0.0)
    lines = [l for l in text.splitlines() if l.strip()]
    summary = lines[-1] if lines else ""
    m = re.search(r"(\d+) passed", summary)
    passed = int(m.group(1)) if m else 0
    ok = proc.returncode == 0 and passed == tests and "failed" not in summary
    problem = "" if ok else f"exit {proc.returncode}, summary {summary!r}"
    return {
        "wall": wall, "ctl_cpu": ctl_cpu, "workers_cpu": children_cpu,
        "startup": startup, "run_wall": run_wall, "run_cpu": run_cpu,
        "hwm_mb": sampler.hwm_kb / 1024, "threads": sampler.threads,
        "ok": ok, "problem": problem,
    }


def fmt_table(rows: list[dict], tests: int) -> str:
    out = [
        "| workers | wall s | startup s | run s | reports/s (run) | reports/s (wall) "
        "| controller CPU s | ctl CPU in run | workers CPU s | controller peak RSS MB "
        "| threads | status |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if not r["ok"]:
            out.append(f"| {r['workers']} |" + " - |" * 10 + f" INVALID: {r['problem']} |")
            continue
        out.append(
            f"| {r['workers']} | {r['wall']:.2f} | {r['startup']:.2f} | {r['run_wall']:.2f} "
            f"| {tests / r['run_wall']:,.0f} | {tests / r['wall']:,.0f} | {r['ctl_cpu']:.2f} "
            f"| {100 * r['run_cpu'] / r['run_wall']:.0f}% | {r['workers_cpu']:.2f} "
            f"| {r['hwm_mb']:.0f} | {r['threads']} | ok |"
        )
    return "\n".join(out)


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="2,8,64,256,1024",
                    help="comma-separated worker counts (default 2,8,64,256,1024)")
    ap.add_argument("--tests", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3, help="runs per worker count below 1024")
    ap.add_argument("--heavy-runs", type=int, default=1, help="runs for 1024+ workers")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.md")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x.strip()]

    if not args.no_build:
        build()
    xdist = target_dir() / "release" / "xdist"
    worker = target_dir() / "release" / "synthetic-worker"
    for p in (xdist, worker):
        if not p.exists():
            log(f"missing {p} (build first, or set CARGO_TARGET_DIR)")
            return 2
    raise_limits(max(counts))
    load_start = os.getloadavg()[0]
    log("warm-up (2 workers, 1000 tests, untimed)")
    run_once(xdist, worker, 2, 1000, args.timeout)

    rows = []
    for w in counts:
        n = args.heavy_runs if w >= 1024 else args.runs
        results = []
        for k in range(n):
            r = run_once(xdist, worker, w, args.tests, args.timeout)
            log(f"-n {w} run {k + 1}/{n}: {r['wall']:.2f}s wall ({r['startup']:.2f}s startup, "
                f"{r['run_wall']:.2f}s run, controller {r['run_cpu']:.2f}s CPU in it), controller CPU "
                f"{r['ctl_cpu']:.2f}s, workers CPU {r['workers_cpu']:.2f}s, "
                f"RSS {r['hwm_mb']:.0f} MB{'' if r['ok'] else ' INVALID ' + r['problem']}")
            results.append(r)
        bad = [r for r in results if not r["ok"]]
        if bad:
            row = dict(bad[0])
        else:
            med = statistics.median_low([r["wall"] for r in results])
            row = dict(next(r for r in results if r["wall"] == med))
        row["workers"] = w
        rows.append(row)
    load_end = os.getloadavg()[0]

    table = fmt_table(rows, args.tests)
    head = (
        f"### Controller throughput ({args.tests:,} tests, synthetic workers)\n\n"
        f"- Machine: {os.cpu_count()} CPUs ({platform.machine()}), Linux "
        f"{platform.release()}; xdist {git_rev()}; load average (1 min) {load_start:.2f} at "
        f"start, {load_end:.2f} at end.\n"
        f"- `xdist -n W --python <synthetic-worker> -p no:cacheprovider -q`: every worker "
        f"collects {args.tests:,} ids and answers each test at once (one frame per test "
        f"start, like the Python worker). Median run by wall time of {args.runs} "
        f"({args.heavy_runs} for 1024+ workers).\n"
        f"- startup: spawn to the first progress letter (every worker started and sent its "
        f"{args.tests:,} ids, the controller decoded and compared them); run: the rest. "
        f"reports/s (run) = tests / run.\n"
        f"- Controller CPU: `wait4` rusage of `xdist` minus its reaped children's "
        f"(`/proc/<pid>/stat` cutime+cstime), user+sys, whole run; \"ctl CPU in run\": its "
        f"CPU time during the run phase / run wall time (100% = one core busy). Workers CPU: "
        f"all synthetic workers together. Peak RSS: VmHWM of `xdist` alone. Threads: peak "
        f"thread count of `xdist`.\n"
    )
    text = head + "\n" + table + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log(f"wrote {args.out}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
