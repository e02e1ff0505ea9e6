#!/usr/bin/env bash
# Runs every test of the project: style gates, Rust unit, property and integration tests
# (real Python workers, real .so plugins, real processes killed), the Python worker's own
# tests, the packaging test and the wheel test.
set -euo pipefail
cd "$(dirname "$0")/.."
dev/venv.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
cargo test --workspace --no-fail-fast
.venv/bin/python -m pytest tests/worker tests/suites/test_gen_suites.py -q -p no:cacheprovider
tests/packaging/test.sh   # make install/uninstall; as root with dpkg also the .deb packages
tests/wheel/test.sh       # the xdist-rs wheel: build (maturin), install, pytest -n hand-off, uninstall
