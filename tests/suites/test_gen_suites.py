"""The suite generator's command line: an option is never taken for an output directory."""
import json
import subprocess
import sys
from pathlib import Path

GEN = Path(__file__).resolve().parent / "gen_suites.py"


def run(*args, cwd):
    return subprocess.run([sys.executable, str(GEN), *args], cwd=cwd, capture_output=True, text=True)


def test_help_prints_usage_and_writes_nothing(tmp_path):
    done = run("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "Usage: python gen_suites.py [OUTDIR]" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_one_line_error_and_writes_nothing(tmp_path):
    done = run("--bogus", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "gen_suites.py: unexpected argument '--bogus'; usage: gen_suites.py [OUTDIR]"
    ]
    assert list(tmp_path.iterdir()) == []


def test_writes_every_suite_and_its_manifest(tmp_path):
    done = run(str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "MANIFEST.json").read_text())
    for name in manifest:
        assert (tmp_path / "out" / name / "pytest.ini").is_file()
