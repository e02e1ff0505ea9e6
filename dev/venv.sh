#!/usr/bin/env bash
# Create the project's Python venvs from pinned requirement files:
#   .venv        <- dev/requirements.txt        (pytest only)
#   .venv-xdist  <- dev/requirements-xdist.txt  (pytest + pytest-xdist, pytest-rerunfailures)
#   .venv-sugar  <- dev/requirements-sugar.txt  (pytest + pytest-sugar: tests/controller_hooks.rs)
#   .venv-plugins <- dev/requirements-plugins.txt (pytest + pytest-cov, -randomly, -rerunfailures,
#                    -timeout, -asyncio, hypothesis, -html, -json-report, syrupy, -django, anyio:
#                    crates/xdist-cli/tests/python_plugins.rs)
# Idempotent: a venv is (re)built only when its requirements file changed
# (stamp file .venv*/.requirements.sha256 holds the hash) or it is broken.
# Usage: dev/venv.sh [--force]
# Env: PYTHON (default python3) picks the base interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

ensure_venv_module() {
    if "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return
    fi
    # Debian/Ubuntu split venv/ensurepip into pythonX.Y-venv.
    if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
        local ver
        ver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        echo "venv.sh: installing python${ver}-venv with apt-get" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
        echo "venv.sh: '$PYTHON -m venv' is unavailable; install the python3-venv package" >&2
        exit 1
    fi
}

make_venv() {
    local dir="$ROOT/$1" req="$ROOT/$2"
    local hash stamp="$dir/.requirements.sha256"
    hash="$( { sha256sum "$req" | cut -d' ' -f1; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
    if [[ $FORCE == 0 && -f "$stamp" && "$(cat "$stamp")" == "$hash" && -x "$dir/bin/python" ]] \
        && "$dir/bin/python" -c 'import pytest' >/dev/null 2>&1; then
        echo "venv.sh: $1 is up to date"
        return
    fi
    echo "venv.sh: building $1 from $2"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    echo '*' > "$dir/.gitignore"   # keep the venv out of git whatever the root .gitignore says
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
    echo "$hash" > "$stamp"
    "$dir/bin/python" -m pytest --version
}

ensure_venv_module
make_venv .venv dev/requirements.txt
make_venv .venv-xdist dev/requirements-xdist.txt
make_venv .venv-plugins dev/requirements-plugins.txt
make_venv .venv-sugar dev/requirements-sugar.txt
