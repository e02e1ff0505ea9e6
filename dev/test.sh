#!/usr/bin/env bash
# Runs every test of the project: Rust unit, property and integration tests (real Python
# workers, real .so plugins) and the Python worker's own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
dev/venv.sh
cargo build --workspace
cargo test --workspace --no-fail-fast
.venv/bin/python -m pytest tests/worker -q -p no:cacheprovider
tests/packaging/test.sh   # make install/uninstall; as root with dpkg also the .deb packages
