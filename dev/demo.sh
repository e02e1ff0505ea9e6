#!/usr/bin/env bash
# Builds xdist and runs it on the bundled example suite with 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
dev/venv.sh >/dev/null
cargo build --release -q -p xdist-cli
exec target/release/xdist -n 2 --python .venv/bin/python examples/demo "$@"
