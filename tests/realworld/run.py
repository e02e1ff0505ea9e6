#!/usr/bin/env python3
"""Run real projects' test suites (from PyPI sdists) serially and distributed, and
compare per-test outcomes.

Usage:
    python3 tests/realworld/run.py [--projects a,b] [--with-xdist] [--xdist PATH]
                                   [--distributed-cmd "python -m pytest -n 2"]

For each project: `pip download --no-binary :all: --no-deps NAME==VERSION` into
tests/realworld/.cache/sdists, unpack it, create a venv (pytest==9.2.0, the project
installed from its sdist, its pinned test dependencies; with --with-xdist also
pytest-xdist==3.8.0), then run

    serial:       <venv>/bin/python -m pytest -p no:cacheprovider -v [testpaths]
    distributed:  xdist -n 2 --python <venv>/bin/python -p no:cacheprovider -v [testpaths]

and compare every test's outcome(s) (parsed from the -v lines) and the final summary
counts. Prints a table; exits 1 on any difference (2 on a setup failure).

--distributed-cmd replaces the xdist command line (it validates this script with
pytest-xdist: `--with-xdist --distributed-cmd "python -m pytest -n 2"`); a leading
`python` (or `{python}` anywhere) stands for the venv's interpreter.

Python 3.11 stdlib only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = HERE / ".cache"
DEFAULT_XDIST = ROOT / "target" / "release" / "xdist"

PYTEST = "pytest==9.2.0"
PYTEST_XDIST = "pytest-xdist==3.8.0"


@dataclass
class Project:
    name: str               # PyPI name
    version: str
    test_deps: list[str] = field(default_factory=list)   # pinned
    args: list[str] = field(default_factory=list)        # test paths / extra pytest args
    install_env: dict[str, str] = field(default_factory=dict)  # for `pip install <sdist>`


# Projects whose sdist ships its tests and whose suite runs offline.
PROJECTS = {p.name: p for p in [
    Project("iniconfig", "2.3.1", [], ["testing"]),
    Project("pluggy", "1.7.0", [], ["testing"]),
    Project("markupsafe", "3.0.4", [], ["tests"]),
    Project("click", "8.5.1", [], ["tests"]),
    Project("jinja2", "3.1.6", ["trio==0.35.0"], ["tests"]),
    Project("attrs", "26.1.0", ["hypothesis==6.170.17", "pympler==1.1", "cloudpickle==3.1.3"],
            ["tests"]),
    Project("more-itertools", "11.2.1", [], ["tests"]),
    Project("packaging", "26.4", ["pretend==1.0.9", "tomli-w==1.2.0", "hypothesis==6.170.17"],
            ["tests"]),
    Project("toolz", "1.2.0", [], ["--doctest-modules", "toolz"]),
    Project("python-dateutil", "4.0.0", ["freezegun==1.5.5", "hypothesis==6.170.17",
                                         "pytest-cov==7.1.0", "attrs==26.1.0"],
            ["tests"]),
    Project("cachetools", "8.0.2", [], ["tests"]),
    Project("idna", "3.20", ["hypothesis==6.170.17"], ["tests"]),
    Project("boltons", "26.2.0", [], ["--doctest-modules", "boltons", "tests"]),
    Project("itsdangerous", "2.2.0", ["freezegun==1.5.5"], ["tests"]),
    # without watchdog: its reloader test (test_reloader_sys_path[watchdog]) spun forever here
    Project("werkzeug", "3.1.9", ["cryptography==50.0.2", "ephemeral-port-reserve==1.1.4",
                                  "pytest-timeout==2.4.0"], ["tests"]),
    Project("pytest-mock", "3.17.0", ["pytest-asyncio==1.5.0"], ["tests"]),
    Project("pyflakes", "4.1.0", [], ["pyflakes/test"]),
    Project("six", "1.17.0", [], ["test_six.py"]),
    # --doctest-modules + a module-level importorskip: serial counts 2 collection skips
    # (Module and DoctestModule share the node id); so does xdist since 2627e24.
    Project("wcwidth", "0.9.4", ["pytest-env==1.8.5"],
            ["-o", "addopts=--doctest-modules --ignore=wcwidth/wcwidth.py",
             "-o", "env=WCWIDTH_PYTHON=1", "tests", "wcwidth"]),
    # Parametrizes over a set: its ids' order differs per process (PYTHONHASHSEED), so
    # pytest-xdist and spawned workers stop with "Different tests were collected"; the
    # fork server collects once. Its addopts want pytest-cov with --cov-fail-under=99.
    Project("arrow", "1.4.0", ["pytz==2025.2", "simplejson==3.20.2", "dateparser==1.5.0",
                               "pytest-mock==3.17.0"], ["-o", "addopts=", "tests"]),
    # Its pytest plugin needs pytest-xdist's controller (`pytest_configure_node` gives each
    # worker a `follower_ident`; `pytest_testnodedown` reads it): a controller session.
    Project("sqlalchemy", "2.1.9", [],
            ["test/base", "test/dialect/sqlite", "test/orm/test_query.py",
             "test/sql/test_query.py"],
            install_env={"DISABLE_SQLALCHEMY_CEXT": "1"}),
]}

# Projects on which distribution gives a different result (not in the default run; pick
# them with --projects). See README.md, "Projects that differ".
DIFFERING = {p.name: p for p in [
    # Order-dependent suite: Test03/05/07 switch packrat modes globally for the classes
    # after them; split across workers, test_pep8_synonyms sees another mode and runs
    # another number of subtests (pytest-xdist: the same).
    Project("pyparsing", "3.3.3", ["railroad-diagrams==3.0.1", "jinja2==3.1.6"], ["tests"]),
    # pytest's own suite: tests that `import xdist` / importorskip("xdist") see the worker's
    # stand-in module (without pytest-xdist), or do not see the "xdist" plugin (with it).
    Project("pytest", "9.2.0", ["argcomplete==3.7.2", "attrs==26.1.0", "hypothesis==6.170.17",
                                "mock==5.2.0", "numpy==2.4.6", "pexpect==4.9.0",
                                "pygments==2.21.0", "pyyaml==6.0.4", "requests==2.34.2",
                                "setuptools==84.2.1", "xmlschema==4.3.2"], ["testing"]),
    # Same with pytest-xdist installed. Without it, the worker's `xdist.newhooks` stand-in
    # makes `from xdist.newhooks import pytest_handlecrashitem` succeed, so its 10
    # `requires xdist` tests run (`-p xdist -n 1`: usage error) instead of skipping.
    Project("pytest-rerunfailures", "16.7", [], ["tests"]),
]}
ALL_PROJECTS = {**PROJECTS, **DIFFERING}


# Per-test outcome words of the -v lines. pytest 9 subtest lines (SUBPASSED(...) etc.)
# are not per-test outcomes: serial -v hides passing subtests while pytest-xdist shows
# them, so subtests are compared through the summary counts only.
OUTCOMES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
OUT_ALT = "|".join(sorted(OUTCOMES, key=len, reverse=True))
# serial -v:       tests/test_a.py::test_x PASSED                  [ 10%]
#                  tests/test_a.py::test_y SKIPPED (reason)         [ 20%]
SERIAL_RE = re.compile(rf"^(?P<rest>.+?) (?P<out>{OUT_ALT})\b(?P<tail>.*?)\s*\[\s*\d+%\]\s*$")
# distributed -v:  [gw0] [ 10%] PASSED tests/test_a.py::test_x
WORD_RE = re.compile(rf" ({OUT_ALT})\b")
# pytest's wrap_write garbles a skip reason written past the screen width: the reason's
# head is cut off and glued to the word, maybe with a line break before the percentage
# ("nodeid SKIPPEDmplementation ...'custom function) [  3%]"). Such a line is taken when
# the text before the word is a collected node id (maybe with pytest's " <- file").
GLUED_RE = re.compile(rf" ({OUT_ALT})")
DIST_RE = re.compile(rf"^\[gw\d+\](?: \[\s*\d+%\])? (?P<out>{OUT_ALT}) (?P<rest>.+?)\s*$")
SUMMARY_RE = re.compile(r"^=+ (?P<body>(?:\d+ [\w ]+?,? ?)+|no tests ran)"
                        r"(?: in [\d.]+s(?: \([^)]*\))?) =+\s*$")
COUNT_RE = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?|"
                      r"warnings?|subtests passed|subtests failed|subtests skipped)")


def log(msg: str) -> None:
    print(f"[realworld] {msg}", file=sys.stderr, flush=True)


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
                "PYTEST_XDIST_AUTO_NUM_WORKERS", "PYTHONPATH", "VIRTUAL_ENV", "PY_COLORS",
                "FORCE_COLOR"):
        env.pop(var, None)
    env["NO_COLOR"] = "1"
    return env


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), **kw)


# --------------------------------------------------------------------------
# fetch, unpack, venv
# --------------------------------------------------------------------------
def fetch(p: Project) -> Path:
    sdists = CACHE / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    norm = re.sub(r"[-_.]+", "[-_.]", p.name)
    pat = re.compile(rf"^{norm}-{re.escape(p.version)}\.(tar\.gz|zip)$", re.I)
    found = [f for f in sdists.iterdir() if pat.match(f.name)]
    if not found:
        log(f"{p.name}: pip download {p.name}=={p.version} (sdist)")
        r = sh([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
                "--no-deps", "--disable-pip-version-check", "-d", str(sdists),
                f"{p.name}=={p.version}"])
        if r.returncode != 0:
            raise SetupError(f"pip download failed: {r.stderr.strip()[-400:]}")
        found = [f for f in sdists.iterdir() if pat.match(f.name)]
        if not found:
            raise SetupError(f"sdist of {p.name}=={p.version} not found after download")
    sdist = found[0]
    src = CACHE / "src" / f"{p.name}-{p.version}"
    if not (src / ".unpacked").exists():
        shutil.rmtree(src, ignore_errors=True)
        tmp = CACHE / "src" / f".tmp-{p.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(sdist) as t:
                t.extractall(tmp, filter="data")
        (top,) = list(tmp.iterdir())
        top.rename(src)
        shutil.rmtree(tmp)
        (src / ".unpacked").write_text(sdist.name + "\n")
    return src


class SetupError(Exception):
    pass


def ensure_venv(p: Project, src: Path, with_xdist: bool) -> Path:
    reqs = [PYTEST, *p.test_deps] + ([PYTEST_XDIST] if with_xdist else [])
    stamp_data = {"reqs": reqs, "project": f"{p.name}=={p.version}", "python": sys.version}
    if p.install_env:
        stamp_data["install_env"] = p.install_env
    stamp_text = json.dumps(stamp_data, sort_keys=True)
    venv = CACHE / "venvs" / (f"{p.name}-{p.version}" + ("-with-xdist" if with_xdist else ""))
    stamp = venv / ".stamp"
    py = venv / "bin" / "python"
    if stamp.exists() and stamp.read_text() == stamp_text and py.exists():
        return py
    shutil.rmtree(venv, ignore_errors=True)
    log(f"{p.name}: creating venv {venv.name} ({', '.join(reqs)} + {p.name} from sdist)")
    r = sh([sys.executable, "-m", "venv", str(venv)])
    if r.returncode != 0:
        raise SetupError(f"venv failed: {r.stderr.strip()[-400:]}")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *reqs, str(src)], capture_output=True, text=True,
                       env={**clean_env(), **p.install_env})
    if r.returncode != 0:
        raise SetupError(f"pip install failed: {r.stderr.strip()[-600:]}")
    if not with_xdist:
        chk = sh([str(py), "-c", "import xdist"])
        if chk.returncode == 0:
            raise SetupError("pytest-xdist got installed as a dependency; venv is not xdist-free")
    stamp.write_text(stamp_text)
    return py


def freeze(py: Path) -> str:
    r = sh([str(py), "-m", "pip", "freeze", "--disable-pip-version-check"])
    return " ".join(l for l in r.stdout.split() if not l.startswith(("-e", "#")))


# --------------------------------------------------------------------------
# running and parsing
# --------------------------------------------------------------------------
@dataclass
class Result:
    rc: int
    seconds: float
    outcomes: dict[str, list[str]]   # nodeid -> outcomes in report order
    counts: dict[str, int] | None
    output: str
    unparsed_nodeids: int = 0


def collect_nodeids(py: Path, src: Path, p: Project) -> set[str]:
    # --verbosity=-1, not -q: a `-v` in the project's addopts (sqlalchemy) would cancel -q
    # and print the collection tree instead of node ids.
    r = sh([str(py), "-m", "pytest", "-p", "no:cacheprovider", "--collect-only",
            "--verbosity=-1", *p.args], cwd=src)
    ids = set()
    for line in r.stdout.splitlines():
        if "::" in line and not line.startswith(("=", " ")):
            ids.add(line.strip())
    return ids


def resolve_nodeid(rest: str, known: set[str]) -> str:
    """`rest` starts with a node id, maybe followed by ' - reason' or ' (reason)'."""
    if rest in known or not known:
        return rest
    for sep in (" - ", " (", " "):
        i = len(rest)
        while True:
            i = rest.rfind(sep, 0, i)
            if i <= 0:
                break
            if rest[:i] in known:
                return rest[:i]
    return rest


def parse(output: str, distributed: bool, known: set[str]) -> tuple[dict, dict | None]:
    outcomes: dict[str, list[str]] = {}
    rx = DIST_RE if distributed else SERIAL_RE
    for line in output.splitlines():
        line = line.rstrip()
        m = rx.match(line)
        if not m:
            if not distributed and known:
                for w in GLUED_RE.finditer(line):
                    nid = resolve_nodeid(line[:w.start()], known)
                    if nid in known:
                        outcomes.setdefault(nid, []).append(w.group(1))
                        break
            continue
        nid, out = resolve_nodeid(m.group("rest").strip(), known), m.group("out")
        if not distributed and known and nid not in known:
            # a node id that itself contains " PASSED" etc.: take the split that yields
            # a collected node id
            for w in WORD_RE.finditer(line):
                if line[:w.start()] in known:
                    nid, out = line[:w.start()], w.group(1)
                    break
        outcomes.setdefault(nid, []).append(out)
    counts = None
    for line in reversed(output.splitlines()):
        m = SUMMARY_RE.match(line.strip())
        if m:
            counts = {}
            for n, word in COUNT_RE.findall(m.group("body")):
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(n)
            break
    return outcomes, counts


def run(cmd: list[str], cwd: Path, distributed: bool, known: set[str], log_path: Path,
        timeout: float) -> Result:
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=cwd, env=clean_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                           errors="replace", timeout=timeout)
        rc, out = r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = -9, (e.stdout or b"").decode("utf-8", "replace") if isinstance(
            e.stdout, bytes) else (e.stdout or "") + f"\n[realworld] TIMEOUT after {timeout}s\n"
    except OSError as e:
        rc, out = -1, f"[realworld] cannot start {cmd[0]}: {e}\n"
    dt = time.perf_counter() - t0
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {shlex.join(cmd)}\n(cwd {cwd})\n\n{out}\n[exit {rc}]\n")
    outcomes, counts = parse(out, distributed, known)
    unparsed = sum(1 for n in outcomes if known and n not in known)
    return Result(rc, dt, outcomes, counts, out, unparsed)


def distributed_cmd(args, py: Path) -> list[str]:
    if args.distributed_cmd:
        parts = shlex.split(args.distributed_cmd)
        if parts and parts[0] == "python":
            parts[0] = str(py)
        return [x.replace("{python}", str(py)) for x in parts]
    return [str(args.xdist_bin), "-n", "2", "--python", str(py)]


# --------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------
def compare(s: Result, d: Result, ignore_counts: set[str]) -> list[str]:
    diffs = []
    if s.rc != d.rc:
        diffs.append(f"exit code: serial {s.rc}, distributed {d.rc}")
    if not s.outcomes:
        diffs.append("serial run reported no test outcomes (parse failure?)")
    for nid in sorted(set(s.outcomes) | set(d.outcomes)):
        a, b = s.outcomes.get(nid), d.outcomes.get(nid)
        if a != b:
            diffs.append(f"{nid}: serial {a or 'missing'}, distributed {b or 'missing'}")
    sc = {k: v for k, v in (s.counts or {}).items() if k not in ignore_counts}
    dc = {k: v for k, v in (d.counts or {}).items() if k not in ignore_counts}
    if s.counts is None or d.counts is None or sc != dc:
        diffs.append(f"summary counts: serial {s.counts}, distributed {d.counts}")
    return diffs


def fmt_counts(c: dict | None) -> str:
    if c is None:
        return "(no summary)"
    return ", ".join(f"{v} {k}" for k, v in c.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--projects", default=",".join(PROJECTS),
                    help=f"comma-separated subset of: {', '.join(ALL_PROJECTS)} "
                         f"(default: all but {', '.join(DIFFERING)})")
    ap.add_argument("--with-xdist", action="store_true",
                    help=f"also install {PYTEST_XDIST} into each venv")
    ap.add_argument("--xdist", default=str(DEFAULT_XDIST),
                    help="xdist binary (default target/release/xdist, built if missing)")
    ap.add_argument("--distributed-cmd", default=None,
                    help='replace the distributed command, e.g. "python -m pytest -n 2" '
                         "(leading `python` / `{python}` = the venv's interpreter)")
    ap.add_argument("--ignore-counts", default="warnings",
                    help="summary keys not compared (default: warnings, which differ "
                         "legitimately with 'once' warning filters per process)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per pytest run, seconds")
    ap.add_argument("--verbose-diff", type=int, default=20,
                    help="differences printed per project (default 20)")
    args = ap.parse_args()

    names = [n.strip() for n in args.projects.split(",") if n.strip()]
    bad = [n for n in names if n not in ALL_PROJECTS]
    if bad:
        ap.error(f"unknown project(s) {bad}; known: {', '.join(ALL_PROJECTS)}")
    ignore = {k.strip() for k in args.ignore_counts.split(",") if k.strip()}

    args.xdist_bin = Path(args.xdist).resolve()
    if not args.distributed_cmd and not args.xdist_bin.exists():
        if args.xdist_bin == DEFAULT_XDIST:
            log("building xdist: cargo build --release -p xdist-cli")
            r = subprocess.run(["cargo", "build", "--release", "-p", "xdist-cli"], cwd=ROOT)
            if r.returncode != 0 or not DEFAULT_XDIST.exists():
                log("cargo build failed")
                return 2
        else:
            log(f"no such xdist binary: {args.xdist_bin}")
            return 2

    flavour = "with pytest-xdist installed" if args.with_xdist else "without pytest-xdist"
    rows, failed, setup_failed = [], False, False
    logs = CACHE / "logs" / ("with-xdist" if args.with_xdist else "no-xdist")
    for name in names:
        p = ALL_PROJECTS[name]
        try:
            src = fetch(p)
            py = ensure_venv(p, src, args.with_xdist)
        except SetupError as e:
            log(f"{name}: SETUP FAILED: {e}")
            rows.append((p, None, None, [f"setup failed: {e}"]))
            setup_failed = True
            continue
        known = collect_nodeids(py, src, p)
        base = ["-p", "no:cacheprovider", "-v", *p.args]
        scmd = [str(py), "-m", "pytest", *base]
        dcmd = distributed_cmd(args, py) + base
        log(f"{name}: serial: {shlex.join(scmd)}")
        s = run(scmd, src, False, known, logs / f"{name}-serial.log", args.timeout)
        log(f"{name}: distributed: {shlex.join(dcmd)}")
        d = run(dcmd, src, True, known, logs / f"{name}-distributed.log", args.timeout)
        diffs = compare(s, d, ignore)
        if diffs:
            failed = True
            log(f"{name}: {len(diffs)} difference(s) (logs in {logs}):")
            for x in diffs[:args.verbose_diff]:
                log(f"    {x}")
        rows.append((p, s, d, diffs))
        log(f"{name}: serial {s.seconds:.1f}s [{fmt_counts(s.counts)}], distributed "
            f"{d.seconds:.1f}s [{fmt_counts(d.counts)}] -> {'DIFF' if diffs else 'same'}")

    print(f"\nReal projects, {flavour}; distributed = "
          f"`{args.distributed_cmd or 'xdist -n 2 --python <venv python>'}`\n")
    print("| project | version | tests | serial | distributed | serial s | distributed s | result |")
    print("|---|---|---:|---|---|---:|---:|---|")
    for p, s, d, diffs in rows:
        if s is None:
            print(f"| {p.name} | {p.version} | - | - | - | - | - | SETUP FAILED |")
            continue
        res = "same" if not diffs else f"**{len(diffs)} difference(s)**"
        print(f"| {p.name} | {p.version} | {len(s.outcomes)} | {fmt_counts(s.counts)} (exit {s.rc}) "
              f"| {fmt_counts(d.counts)} (exit {d.rc}) | {s.seconds:.1f} | {d.seconds:.1f} | {res} |")
    print(flush=True)
    if failed:
        return 1
    return 2 if setup_failed else 0


if __name__ == "__main__":
    sys.exit(main())
