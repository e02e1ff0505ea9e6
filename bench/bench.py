#!/usr/bin/env python3
"""Benchmark xdist against plain pytest and pytest-xdist, in one run.

Usage:
    python3 bench/bench.py [--runs N] [--suites a,b] [--quick] [--xdist PATH] [--no-build]

What it does (see bench/README.md):
  1. builds xdist (`cargo build --release -p xdist-cli`, binary target/release/xdist);
  2. creates or reuses the bench venv bench/.venv with pinned pytest and pytest-xdist;
  3. generates the synthetic suites with tests/suites/gen_suites.py (or small variants
     of them with --quick) under bench/.suites/;
  4. per suite: one untimed warm-up (`pytest --collect-only`, which writes the .pyc files
     of the test modules), then --runs interleaved rounds of every command of the suite;
  5. checks every run's exit code and outcome counts (a run that did not produce the
     expected counts is INVALID and not used for ratios);
  6. prints a Markdown table and writes it to bench/results/latest.md.
With maturin at hand (.venv-wheel-tools, made by tests/wheel/test.sh, or on PATH) it also
builds the xdist-rs wheel into bench/.venv-wheel (same pins) for the hand-off rows:
`XDIST_NATIVE=1 pytest -n 2`, which pytest hands to the wheel's xdist.

Every timed command runs with PYTHONDONTWRITEBYTECODE unset (bytecode caching on, as
users have it). Python 3.11 stdlib only.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
SUITES_DIR = BENCH / ".suites"
RESULTS = BENCH / "results"
GEN = ROOT / "tests" / "suites" / "gen_suites.py"
DEFAULT_XDIST = ROOT / "target" / "release" / "xdist"
WHEEL_VENV = BENCH / ".venv-wheel"
# Over `xdist -n 2` itself, what the `pytest -n 2` hand-off may cost (issue 18).
HANDOFF_BUDGET_S = 0.2

PINS = {"pytest": "9.2.0", "pytest-xdist": "3.8.0"}
WORKERS = 2
MODES = ["load", "worksteal", "loadfile", "loadscope"]
ALL_SUITES = ["trivial", "sleepy", "startup", "skewed", "fixtures", "heavy", "crash", "hooks"]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------
def bench_env() -> dict[str, str]:
    """Environment of every timed command: bytecode caching on, nothing that
    changes pytest's behaviour behind our back."""
    env = dict(os.environ)
    for var in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
                "PYTEST_XDIST_AUTO_NUM_WORKERS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
                "PYTHONPATH", "PY_COLORS", "FORCE_COLOR", "VIRTUAL_ENV"):
        env.pop(var, None)
    env["NO_COLOR"] = "1"
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> dict[str, str]:
    py = venv_python()
    check = ("import importlib.metadata as m, json;"
             "print(json.dumps({p: m.version(p) for p in %r}))" % (list(PINS),))
    if py.exists():
        r = subprocess.run([str(py), "-c", check], capture_output=True, text=True)
        if r.returncode == 0 and json.loads(r.stdout) == PINS:
            log(f"reusing {VENV} ({', '.join(f'{k}=={v}' for k, v in PINS.items())})")
            return PINS
        log(f"{VENV} exists but pins differ ({r.stdout.strip() or r.stderr.strip()}); recreating")
        shutil.rmtree(VENV)
    log(f"creating {VENV}")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *(f"{k}=={v}" for k, v in PINS.items())], check=True)
    r = subprocess.run([str(py), "-c", check], capture_output=True, text=True, check=True)
    got = json.loads(r.stdout)
    if got != PINS:
        sys.exit(f"bench venv has {got}, wanted {PINS}")
    return got


def build_xdist(args) -> tuple[Path | None, str]:
    """Returns (binary or None, note)."""
    if args.xdist:
        p = Path(args.xdist).resolve()
        return (p if p.exists() else None), f"given binary {p}"
    if not args.no_build:
        log("cargo build --release -p xdist-cli")
        r = subprocess.run(["cargo", "build", "--release", "-p", "xdist-cli"], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            tail = "\n".join(r.stderr.strip().splitlines()[-15:])
            log(f"cargo build FAILED (xdist rows will be INVALID):\n{tail}")
            return None, "cargo build failed"
    if DEFAULT_XDIST.exists():
        return DEFAULT_XDIST, "target/release/xdist"
    return None, "target/release/xdist missing"


def ensure_wheel_venv(pins: dict[str, str]) -> tuple[Path | None, str]:
    """bench/.venv-wheel: the bench pins plus the xdist-rs wheel, freshly built
    (packaging/wheel/build.sh). Returns (its pytest or None, note)."""
    maturin = ROOT / ".venv-wheel-tools" / "bin" / "maturin"
    maturin = str(maturin) if maturin.exists() else shutil.which("maturin")
    if not maturin:
        return None, "no maturin (run tests/wheel/test.sh once, or pip install -r dev/requirements-wheel.txt)"
    log("packaging/wheel/build.sh (for the hand-off rows)")
    r = subprocess.run([str(ROOT / "packaging" / "wheel" / "build.sh")], cwd=ROOT,
                       env={**os.environ, "MATURIN": maturin}, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "wheel build failed: " + " | ".join(r.stderr.strip().splitlines()[-3:])
    wheel = r.stdout.strip().splitlines()[-1]
    py = WHEEL_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(WHEEL_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *(f"{k}=={v}" for k, v in pins.items())], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--force-reinstall", "--no-deps", wheel], check=True)
    return WHEEL_VENV / "bin" / "pytest", Path(wheel).name


def git_rev() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                       text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "crates"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "?") + ("+dirty" if dirty else "")


# --------------------------------------------------------------------------
# suites
# --------------------------------------------------------------------------
def load_generator():
    if not GEN.exists():
        sys.exit(f"missing {GEN} (the project's suite generator)")
    spec = importlib.util.spec_from_file_location("gen_suites", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ini(d: Path) -> None:
    d.mkdir(parents=True)
    (d / "pytest.ini").write_text("[pytest]\n")


def quick_suite(root: Path, name: str) -> dict:
    """Small variants of the generator's suites, same shapes (for --quick)."""
    d = root / name
    if d.exists():
        shutil.rmtree(d)
    _ini(d)
    if name == "trivial":  # 1000 tests in 10 files
        for f in range(10):
            lines = ["import pytest", ""]
            for i in range(70):
                lines += [f"def test_plain_{i:02d}():", f"    assert {f} + {i} == {f + i}", ""]
            lines += ['@pytest.mark.parametrize("x", list(range(30)))',
                      "def test_param(x):", "    assert x >= 0", ""]
            (d / f"test_trivial_{f:02d}.py").write_text("\n".join(lines) + "\n")
        return {"tests": 1000, "expect": {"passed": 1000}}
    if name == "sleepy":  # 100 x 10 ms
        for f in range(5):
            lines = ["import time", ""]
            for i in range(20):
                lines += [f"def test_sleep_{i:02d}():", "    time.sleep(0.010)", ""]
            (d / f"test_sleepy_{f:02d}.py").write_text("\n".join(lines) + "\n")
        return {"tests": 100, "expect": {"passed": 100}}
    if name == "startup":
        (d / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        return {"tests": 1, "expect": {"passed": 1}}
    if name == "skewed":  # 40 x 5 ms, then 3 long ones last
        (d / "conftest.py").write_text(
            "import time\n\n\ndef burn(seconds):\n"
            "    end = time.process_time() + seconds\n    x = 0\n"
            "    while time.process_time() < end:\n        for _ in range(1000):\n"
            "            x += 1\n    return x\n")
        durations = []
        for f in range(4):
            lines = ["from conftest import burn", ""]
            for i in range(10):
                lines += [f"def test_quick_{i:02d}():", "    burn(0.005)", ""]
                durations.append(0.005)
            (d / f"test_skew_{f:02d}.py").write_text("\n".join(lines) + "\n")
        lines = ["from conftest import burn", ""]
        for i, s in enumerate([0.3, 0.5, 0.8]):
            lines += [f"def test_long_{i:02d}():", f"    burn({s})", ""]
            durations.append(s)
        (d / "test_skew_zz_long.py").write_text("\n".join(lines) + "\n")
        total = sum(durations)
        return {"tests": 43, "expect": {"passed": 43}, "total_cpu_work_s": round(total, 3),
                "longest_s": max(durations),
                "makespan_lower_bound_2_workers_s": round(max(total / 2, max(durations)), 3)}
    if name == "fixtures":  # 6 modules x 5 tests, 200 ms module fixture
        for f in range(6):
            lines = ["import time", "import pytest", "", "",
                     '@pytest.fixture(scope="module")', "def expensive():",
                     "    time.sleep(0.200)", f"    yield {{'module': {f}}}", "", ""]
            for i in range(5):
                lines += [f"def test_uses_fixture_{i:02d}(expensive):",
                          f"    assert expensive['module'] == {f}", ""]
            (d / f"test_fixtures_{f:02d}.py").write_text("\n".join(lines) + "\n")
        return {"tests": 30, "expect": {"passed": 30}}
    raise ValueError(name)


# Suites of this script's own (same in --quick): every test start is recorded in the file
# $BENCH_MARKS names ("start <worker> <time>", "crash <time>").
MARKS_CONFTEST = """import os, time
import pytest


@pytest.fixture(autouse=True)
def _bench_mark():
    path = os.environ.get("BENCH_MARKS")
    if path:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, "start {} {!r}\\n".format(worker, time.time()).encode())
        os.close(fd)
    yield
"""
BURN = ("def burn(seconds):\n    end = time.process_time() + seconds\n    x = 0\n"
        "    while time.process_time() < end:\n        x += 1\n    return x\n")


def own_suite(root: Path, name: str) -> dict:
    d = root / name
    if d.exists():
        shutil.rmtree(d)
    _ini(d)
    if name == "heavy":  # the conftest imports a module that burns 2 s; 200 x 10 ms
        (d / "heavy_module.py").write_text("import time\n\n" + BURN + "\nburn(2.0)\n")
        (d / "conftest.py").write_text(MARKS_CONFTEST + "\nimport heavy_module  # noqa\n")
        for f in range(10):
            lines = ["import time", "", BURN]
            for i in range(20):
                lines += [f"def test_heavy_{i:02d}():", "    burn(0.010)", ""]
            (d / f"test_heavy_{f:02d}.py").write_text("\n".join(lines) + "\n")
        return {"tests": 200, "expect": {"passed": 200}}
    if name == "crash":  # 20 quick tests, the 10th kills its worker
        (d / "conftest.py").write_text(MARKS_CONFTEST)
        lines = ["import os, time", ""]
        for i in range(20):
            lines += [f"def test_c{i:02d}():"]
            if i == 9:
                lines += ["    fd = os.open(os.environ['BENCH_MARKS'], os.O_WRONLY | os.O_APPEND)",
                          "    os.write(fd, 'crash {!r}\\n'.format(time.time()).encode())",
                          "    os._exit(1)"]
            else:
                lines += ["    pass"]
            lines += [""]
        (d / "test_crash.py").write_text("\n".join(lines) + "\n")
        return {"tests": 20, "expect": {"failed": 1, "passed": 19}, "rc": 1}
    if name == "hooks":  # 100 x 5 ms twice: plain/, and hooked/ with a controller hook
        for sub in ("plain", "hooked"):
            _ini(d / sub)
            lines = ["import time", ""]
            for i in range(100):
                lines += [f"def test_h{i:03d}():", "    time.sleep(0.005)", ""]
            (d / sub / "test_hooks.py").write_text("\n".join(lines) + "\n")
        # A conftest controller hook: the run gets a controller session (issue 17).
        (d / "hooked" / "conftest.py").write_text(
            "def pytest_testnodeready(node):\n    node.ready_seen = True\n")
        # "tests": both halves (the warm-up collects the suite's directory); a row runs one.
        return {"tests": 200, "expect": {"passed": 100}}
    raise ValueError(name)


OWN_SUITES = ("heavy", "crash", "hooks")

# expected shapes of the full suites (checked against what the generator produced)
FULL_SHAPES = {"trivial": 5000, "sleepy": 400, "startup": 1, "skewed": 200, "fixtures": 500}


def generate(names: list[str], quick: bool) -> tuple[Path, dict]:
    root = SUITES_DIR / ("quick" if quick else "full")
    root.mkdir(parents=True, exist_ok=True)
    manifest = {n: own_suite(root, n) for n in names if n in OWN_SUITES}
    names = [n for n in names if n not in OWN_SUITES]
    if quick:
        for n in names:
            manifest[n] = quick_suite(root, n)
    elif names:
        gen = load_generator()
        for n in names:
            m = getattr(gen, f"gen_{n}")(root)
            if m["tests"] != FULL_SHAPES[n] or m["expect"] != {"passed": FULL_SHAPES[n]}:
                sys.exit(f"generator's {n} suite has an unexpected shape: {m}")
            manifest[n] = m
    log(f"generated {', '.join(manifest)} under {root}")
    return root, manifest


# --------------------------------------------------------------------------
# running one command
# --------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    ok: bool
    why: str = ""
    rss_mb: float | None = None
    cpu_s: float | None = None          # user + sys of the whole process tree
    pss_mb: float | None = None         # peak of the summed PSS of the controller's descendants
    server_pss_mb: float | None = None  # the fork server's part of that peak (fork mode)

    @property
    def workers_pss_mb(self) -> float | None:
        """The peak's PSS without the fork server's part: the workers alone."""
        if self.pss_mb is None:
            return None
        return self.pss_mb - (self.server_pss_mb or 0.0)
    first_test_s: float | None = None   # start -> first test start
    crash_gap_ms: float | None = None   # a worker's crash -> the next test start


SUMMARY_RE = re.compile(r"^=*\s*(?P<body>\d+ \w.*?) in [\d.]+s(?: \([^)]*\))?\s*=*\s*$")
COUNT_RE = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?|"
                      r"warnings?|subtests passed|subtests failed|tests? collected)")


def parse_counts(output: str) -> dict[str, int] | None:
    for line in reversed(output.splitlines()):
        m = SUMMARY_RE.match(line.strip())
        if m:
            counts: dict[str, int] = {}
            for n, word in COUNT_RE.findall(m.group("body")):
                word = {"error": "errors", "warning": "warnings", "test collected": "collected",
                        "tests collected": "collected"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(n)
            counts.pop("warnings", None)
            return counts
    return None


def poll_hwm(pid: int, out: list, stop: threading.Event) -> None:
    path = f"/proc/{pid}/status"
    while not stop.is_set():
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        out[0] = int(line.split()[1])  # kB, monotonic high-water mark
                        break
        except OSError:
            return
        stop.wait(0.005)


def process_tree(pid: int) -> dict[int, list[int]]:
    """Children of each process below `pid` (one /proc scan)."""
    children: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(e))
    return children


def descendants(pid: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def poll_pss(pid: int, out: list, stop: threading.Event) -> None:
    """Peak of the summed PSS of `pid`'s descendants (its workers, a fork server), and the
    fork server's part of it. The fork server is the controller's child whose own children are
    the workers; in spawn mode the workers are the controller's children and none is a server.
    PSS splits a shared page among the processes mapping it, so the server's part is what the
    workers alone would not show: both are reported."""
    while not stop.is_set():
        tree = process_tree(pid)
        sizes = {c: pss_kb(c) for c in descendants(pid, tree)}
        total = sum(sizes.values())
        if total > (out[0] or 0):
            out[0] = total
            out[1] = sum(sizes.get(c, 0) for c in tree.get(pid, []) if tree.get(c))
        stop.wait(0.05)


def read_marks(path: str, t0: float) -> tuple[float | None, float | None]:
    """(first test start, crash -> next test start in ms) from a $BENCH_MARKS file."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None, None
    starts = [float(line.split()[2]) for line in lines if line.startswith("start ")]
    crashes = [float(line.split()[1]) for line in lines if line.startswith("crash ")]
    first = min(starts) - t0 if starts else None
    gap = None
    if crashes:
        after = [t for t in starts if t > crashes[0]]
        gap = (min(after) - crashes[0]) * 1000 if after else None
    return first, gap


def run_cmd(cmd: list[str], cwd: Path, expect: dict[str, int], timeout: float,
            pss: bool = False, rc_expected: int = 0) -> Run:
    env = bench_env()
    marks = tempfile.NamedTemporaryFile(prefix="bench-marks-", delete=False)
    marks.close()
    os.unlink(marks.name)
    env["BENCH_MARKS"] = marks.name
    with tempfile.TemporaryFile(mode="w+b") as out:
        wall0 = time.time()
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            return Run(0.0, False, f"cannot start: {e}")
        hwm = [None]
        stop = threading.Event()
        th = threading.Thread(target=poll_hwm, args=(p.pid, hwm, stop), daemon=True)
        th.start()
        pss_peak = [None, None]
        if pss:
            tp = threading.Thread(target=poll_pss, args=(p.pid, pss_peak, stop), daemon=True)
            tp.start()
        # Popen.wait(timeout=...) polls with sleeps of up to 50 ms, which would quantize
        # the wall times; wait() blocks in waitpid, and a timer enforces the timeout.
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        # wait4: the rusage of the whole tree (every process reaped below it counts).
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        rc = p.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
        stop.set()
        th.join()
        if timed_out.is_set():
            return Run(timeout, False, f"timeout after {timeout:g}s")
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    rss = hwm[0] / 1024 if hwm[0] else None
    counts = parse_counts(text)
    first, gap = read_marks(marks.name, wall0)
    try:
        os.unlink(marks.name)
    except OSError:
        pass
    extra = dict(cpu_s=usage.ru_utime + usage.ru_stime, first_test_s=first, crash_gap_ms=gap,
                 pss_mb=pss_peak[0] / 1024 if pss_peak[0] else None,
                 server_pss_mb=pss_peak[1] / 1024 if pss_peak[0] else None)
    if rc != rc_expected:
        tail = " | ".join(text.strip().splitlines()[-3:])[:300]
        return Run(dt, False, f"exit {rc}: {tail}", rss, **extra)
    if counts != expect:
        return Run(dt, False, f"counts {counts}, expected {expect}", rss, **extra)
    return Run(dt, True, "", rss, **extra)


# --------------------------------------------------------------------------
# the commands of each suite
# --------------------------------------------------------------------------
@dataclass
class Row:
    key: str          # unique key
    label: str        # shown in the table
    kind: str         # serial | collect | pytest-xdist | xdist
    mode: str | None  # dist mode or None
    cmd: list[str]
    expect: dict
    phase: str = ""   # "" | "first" | "second" (skewed: empty cache / with history)
    pss: bool = False  # sample the workers' PSS (costs CPU: only where it is reported)
    rc: int = 0
    runs: list[Run] = field(default_factory=list)

    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    def valid(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    def median(self, attr: str = "seconds") -> float | None:
        vals = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return statistics.median(vals) if self.valid() and vals else None


def suite_rows(name: str, manifest: dict, xdist: Path | None,
               handoff_pytest: Path | None = None) -> list[Row]:
    pytest = str(VENV / "bin" / "pytest")
    py = str(venv_python())
    xd = str(xdist or DEFAULT_XDIST)  # a missing binary fails at start -> INVALID
    n = str(WORKERS)
    exp = manifest["expect"]
    rows = [Row("serial", "pytest", "serial", None, [pytest], exp)]
    if name == "hooks":
        # Each its own rootdir and cache: the hooked one remembers it wants a session.
        return [Row("serial", "pytest plain/", "serial", None, [pytest, "plain"], exp)] + [
            Row(f"xd-load-{sub}", f"xdist -n {n} {sub}/ ({what})", "xdist", "load",
                [xd, "--python", py, "-n", n, sub], exp)
            for sub, what in (("plain", "no controller hook"),
                              ("hooked", "a conftest's pytest_testnodeready"))
        ]
    if name in ("heavy", "crash"):
        counts = ["2", "8"] if name == "heavy" else ["1"]
        rc = manifest.get("rc", 0)
        rows = [] if name == "crash" else rows
        for k in counts:
            rows.append(Row(f"px-load-{k}", f"pytest -n {k}", "pytest-xdist", "load",
                            [pytest, "-n", k], exp, rc=rc))
            for start in ("fork", "spawn"):
                rows.append(Row(f"xd-load-{k}-{start}", f"xdist -n {k} --start {start}", "xdist",
                                "load", [xd, "--python", py, "-n", k, "--start", start], exp,
                                rc=rc))
        return rows
    if name in ("trivial", "skewed", "fixtures"):
        rows.insert(0, Row("collect", "pytest --collect-only -q", "collect", None,
                           [pytest, "--collect-only", "-q"], {"collected": manifest["tests"]}))
    if name in ("skewed", "fixtures"):
        for m in MODES:
            rows.append(Row(f"px-{m}", f"pytest -n {n} --dist {m}", "pytest-xdist", m,
                            [pytest, "-n", n, "--dist", m], exp))
            xcmd = [xd, "--python", py, "-n", n, "--dist", m]
            if name == "skewed":
                rows.append(Row(f"xd-{m}-first", f"xdist -n {n} --dist {m} (1st run, empty cache)",
                                "xdist", m, xcmd, exp, phase="first"))
                rows.append(Row(f"xd-{m}", f"xdist -n {n} --dist {m} (2nd run, history)",
                                "xdist", m, xcmd, exp, phase="second"))
            else:
                rows.append(Row(f"xd-{m}", f"xdist -n {n} --dist {m}", "xdist", m, xcmd, exp))
    else:
        pss = name == "trivial"
        rows.append(Row("px-load", f"pytest -n {n}", "pytest-xdist", "load",
                        [pytest, "-n", n], exp, pss=pss))
        rows.append(Row("xd-load", f"xdist -n {n} (fork)", "xdist", "load",
                        [xd, "--python", py, "-n", n], exp, pss=pss))
        rows.append(Row("xd-load-spawn", f"xdist -n {n} --start spawn", "xdist", "load",
                        [xd, "--python", py, "-n", n, "--start", "spawn"], exp, pss=pss))
        if pss:
            # Memory is where the fork server's saving grows with the worker count: each
            # child copies what it touches, each spawned worker holds a whole collection.
            for start in ("fork", "spawn"):
                rows.append(Row(f"xd-load-8-{start}", f"xdist -n 8 --start {start}", "xdist",
                                "load", [xd, "--python", py, "-n", "8", "--start", start], exp,
                                pss=True))
        if handoff_pytest:
            rows.append(Row("handoff", f"pytest -n {n} (XDIST_NATIVE=1: hand-off to the wheel's xdist)",
                            "xdist", "load",
                            ["env", "XDIST_NATIVE=1", str(handoff_pytest), "-n", n], exp))
    return rows


def bench_suite(name: str, sdir: Path, manifest: dict, xdist: Path | None, runs: int,
                timeout: float, handoff_pytest: Path | None = None) -> list[Row]:
    rows = suite_rows(name, manifest, xdist, handoff_pytest)
    cache = sdir / ".pytest_cache"
    # Untimed warm-up: collection imports every test module (and conftest) through
    # pytest's assertion rewriter, which writes the .pyc files with bytecode caching on.
    w = run_cmd([str(VENV / "bin" / "pytest"), "--collect-only", "-q"], sdir,
                {"collected": manifest["tests"]}, timeout)
    log(f"{name}: warm-up (pytest --collect-only, writes .pyc) "
        f"{'ok' if w.ok else 'FAILED: ' + w.why} in {w.seconds:.2f}s")
    for i in range(runs):
        for row in rows:
            if row.phase == "first":
                shutil.rmtree(cache, ignore_errors=True)
            r = run_cmd(row.cmd, sdir, row.expect, timeout, row.pss, row.rc)
            row.runs.append(r)
            rss = f" rss={r.rss_mb:.1f}MB" if r.rss_mb else ""
            log(f"{name} run {i + 1}/{runs}: {row.label}: {r.seconds:.2f}s{rss}"
                + ("" if r.ok else f"  INVALID ({r.why})"))
    return rows


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def report_header(meta: dict) -> list[str]:
    """The table's preamble (what was run, how) and its header row."""
    out = []
    out.append(f"### Benchmark: xdist vs pytest vs pytest-xdist (`-n {WORKERS}`)")
    out.append("")
    out.append(f"- Machine: {meta['cpus']} CPUs ({platform.machine()}), {platform.system()} "
               f"{platform.release()}; Python {meta['python']}; pytest {PINS['pytest']}, "
               f"pytest-xdist {PINS['pytest-xdist']}; xdist {meta['rev']} ({meta['xdist']}).")
    out.append(f"- Load average (1 min) at start {meta['load0']:.2f}, at end {os.getloadavg()[0]:.2f} "
               "(other processes on the machine distort wall times; compare rows of one run).")
    out.append(f"- {meta['runs']} interleaved run(s) per command{' (--quick: small suites)' if meta['quick'] else ''}; "
               "median wall time in seconds, [min-max]; ratios use medians.")
    out.append("- Bytecode caching ON: `PYTHONDONTWRITEBYTECODE` is unset for every timed "
               "command, and one untimed warm-up (`pytest --collect-only`) per suite writes "
               "the .pyc files first.")
    out.append("- Peak RSS: VmHWM of the controller process itself (for pytest-xdist the main "
               "pytest process; for xdist the `xdist` binary), workers not included.")
    out.append("- Every run is checked for exit code 0 and the exact outcome counts; "
               "**INVALID** marks a command with any run that failed the check.")
    out.append("")
    out.append("- CPU s: user + sys of the whole process tree (`wait4`); first test: start to "
               "the first test's start (suites with the marks conftest); worker PSS: peak of the "
               "summed PSS of the controller's descendants; crash gap: a worker's crash to the "
               "next test start (on its replacement at `-n 1`).")
    out.append("")
    out.append("| suite | command | median s | [min-max] | vs serial | vs pytest-xdist | "
               "peak RSS MB | CPU s | first test s | worker PSS MB | crash gap ms | status |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    return out


def table_row(suite: str, r: Row, by: dict[str, Row], serial: float | None) -> str:
    """One command's row: its times, ratios, memory, CPU and status."""
    med = r.median()
    times = [x.seconds for x in r.runs]
    rng = f"[{min(times):.2f}-{max(times):.2f}]" if times else "-"
    vs_serial = fmt_ratio(med, serial) if r.kind in ("xdist", "pytest-xdist") else "-"
    vs_px = "-"
    if r.kind == "xdist":
        px = by.get(f"px-{r.mode}") or by.get(r.key.replace("xd-", "px-").rsplit("-", 1)[0])
        vs_px = fmt_ratio(med, px.median() if px else None)
    rss = [x.rss_mb for x in r.runs if x.rss_mb]
    rss_s = f"{max(rss):.1f}" if rss and r.kind != "collect" else "-"
    if r.valid():
        status = "ok"
    elif not r.runs:
        status = "not run"
    else:
        bad = next(x for x in r.runs if not x.ok)
        status = f"**INVALID** ({bad.why[:120]})".replace("|", "/")
    cpu, first = r.median("cpu_s"), r.median("first_test_s")
    pss = r.median("pss_mb")
    gap = r.median("crash_gap_ms")
    return (f"| {suite} | `{r.label}` | {fmt_s(med)} | {rng} | {vs_serial} | "
            f"{vs_px} | {rss_s} | {fmt_s(cpu)} | {fmt_s(first)} | "
            f"{'-' if pss is None else f'{pss:.0f}'} | "
            f"{'-' if gap is None else f'{gap:.0f}'} | {status} |")


def suite_notes(suite: str, by: dict[str, Row], m: dict, serial: float | None, meta: dict) -> list[str]:
    """The figures derived from a suite's rows, against the targets the issues set."""
    notes = []
    if suite == "trivial":
        tc, ts = by["collect"].median(), serial
        if tc is not None and ts is not None:
            lim = tc + (ts - tc) / WORKERS
            xd = by["xd-load"].median()
            notes.append(f"- **trivial**: T_collect = {tc:.2f}s, T_serial = {ts:.2f}s, limit "
                         f"L = T_collect + (T_serial - T_collect)/{WORKERS} = {lim:.2f}s; "
                         f"xdist (fork) / L = {fmt_ratio(xd, lim)} (target <= 1.05x); "
                         f"xdist / pytest-xdist = {fmt_ratio(xd, by['px-load'].median())} "
                         "(target <= 0.5x).")
    if suite == "trivial" and "xd-load-spawn" in by:
        cpu_s = by["serial"].median("cpu_s")
        notes.append(
            f"- **trivial, fork vs spawn**: total CPU / serial: fork "
            f"{fmt_ratio(by['xd-load'].median('cpu_s'), cpu_s)}, spawn "
            f"{fmt_ratio(by['xd-load-spawn'].median('cpu_s'), cpu_s)} (target fork <= 1.15x); "
            f"worker PSS fork / spawn = "
            f"{fmt_ratio(by['xd-load'].median('pss_mb'), by['xd-load-spawn'].median('pss_mb'))}"
            " (target <= 0.6x); at -n 8: "
            f"{fmt_ratio(by['xd-load-8-fork'].median('pss_mb'), by['xd-load-8-spawn'].median('pss_mb'))}; "
            "the workers alone, without the fork server's part of the shared pages: "
            f"{fmt_ratio(by['xd-load'].median('workers_pss_mb'), by['xd-load-spawn'].median('pss_mb'))}"
            " at -n 2 (fork server "
            f"{by['xd-load'].median('server_pss_mb') or 0:.0f} MB), "
            f"{fmt_ratio(by['xd-load-8-fork'].median('workers_pss_mb'), by['xd-load-8-spawn'].median('pss_mb'))}"
            " at -n 8.")
    if suite == "heavy":
        cpu_s = by["serial"].median("cpu_s")
        parts = []
        for start in ("fork", "spawn"):
            w2, w8 = by[f"xd-load-2-{start}"].median(), by[f"xd-load-8-{start}"].median()
            parts.append(f"{start}: -n 8 / -n 2 wall {fmt_ratio(w8, w2)}, CPU -n 8 / serial "
                         f"{fmt_ratio(by[f'xd-load-8-{start}'].median('cpu_s'), cpu_s)}")
        notes.append("- **heavy**: " + "; ".join(parts)
                     + " (targets for fork: wall <= 1.3x, CPU <= 1.2x).")
    if suite == "startup":
        xd = by["xd-load"].median()
        notes.append(f"- **startup**: xdist / serial = {fmt_ratio(xd, serial)} (target <= 1.2x), "
                     f"xdist / pytest-xdist = {fmt_ratio(xd, by['px-load'].median())} "
                     "(target <= 0.6x).")
    if suite == "skewed":
        lb = m["makespan_lower_bound_2_workers_s"]
        tc = by["collect"].median()
        parts = []
        for mode in MODES:
            f1, f2 = by[f"xd-{mode}-first"].median(), by[f"xd-{mode}"].median()
            px = by[f"px-{mode}"].median()
            parts.append(f"{mode}: 1st {fmt_ratio(f1, lb)}, 2nd {fmt_ratio(f2, lb)} "
                         f"(pytest-xdist {fmt_ratio(px, lb)})")
        extra = ""
        if tc is not None:
            f2 = by["xd-load"].median()
            extra = (f" With startup (T_collect = {tc:.2f}s): LB + T_collect = {lb + tc:.2f}s, "
                     f"xdist load 2nd run / (LB + T_collect) = {fmt_ratio(f2, lb + tc)} "
                     "(target <= 1.10x).")
        notes.append(f"- **skewed**: lower bound LB = max(total test time / {WORKERS}, longest "
                     f"test) = max({m['total_cpu_work_s']}/{WORKERS}, {m['longest_s']}) = "
                     f"{lb:.2f}s (CPU time the tests burn). Ratio to LB: " + "; ".join(parts)
                     + "." + extra)
    if suite == "fixtures":
        parts = [f"{mode}: {fmt_ratio(by[f'xd-{mode}'].median(), by[f'px-{mode}'].median())}"
                 for mode in MODES]
        notes.append("- **fixtures**: xdist / pytest-xdist per mode: " + ", ".join(parts)
                     + " (target for loadfile/loadscope <= 1.00x).")
    if "handoff" in by:
        ho, xd = by["handoff"].median(), by["xd-load"].median()
        cost = "-" if ho is None or xd is None else f"{ho - xd:+.2f}s"
        notes.append(f"- **{suite}** hand-off: `pytest -n {WORKERS}` with XDIST_NATIVE=1 minus "
                     f"`xdist -n {WORKERS}` = {cost} (target <= {HANDOFF_BUDGET_S}s; "
                     f"{meta['wheel']}).")
    return notes


def report(results: dict[str, list[Row]], manifests: dict, meta: dict) -> str:
    out = report_header(meta)
    notes = []
    for suite, rows in results.items():
        by = {r.key: r for r in rows}
        serial = by["serial"].median() if "serial" in by else None
        out.extend(table_row(suite, r, by, serial) for r in rows)
        notes.extend(suite_notes(suite, by, manifests[suite], serial, meta))
    if notes:
        out.append("")
        out.extend(notes)
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="timed runs per command (default 5)")
    ap.add_argument("--suites", default=",".join(ALL_SUITES),
                    help=f"comma-separated subset of {','.join(ALL_SUITES)}")
    ap.add_argument("--quick", action="store_true", help="1 run, small suites (for development)")
    ap.add_argument("--xdist", help="use this xdist binary (no cargo build)")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build")
    ap.add_argument("--timeout", type=float, default=None,
                    help="per-command timeout in seconds (default 300, --quick 60)")
    args = ap.parse_args()
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = [n for n in names if n not in ALL_SUITES]
    if unknown:
        ap.error(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(ALL_SUITES)}")
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    if runs < 1:
        ap.error("--runs must be >= 1")
    timeout = args.timeout or (60.0 if args.quick else 300.0)

    load0 = os.getloadavg()[0]
    xdist, xnote = build_xdist(args)
    pins = ensure_venv()
    handoff_pytest, wheel_note = ensure_wheel_venv(pins)
    if not handoff_pytest:
        log(f"no hand-off rows: {wheel_note}")
    root, manifests = generate(names, args.quick)
    log("PYTHONDONTWRITEBYTECODE is unset for every timed command (bytecode caching on); "
        "one untimed warm-up per suite writes the .pyc files")
    results = {}
    for n in names:
        results[n] = bench_suite(n, root / n, manifests[n], xdist, runs, timeout, handoff_pytest)
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "rev": git_rev(),
            "xdist": xnote, "wheel": wheel_note, "runs": runs, "quick": args.quick, "load0": load0}
    md = report(results, manifests, meta)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(md)
    print(md)
    log(f"written {RESULTS / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
