#!/usr/bin/env bash
# Builds the Python wheel `xdist-rs` (pyproject.toml) with maturin, offline:
#
#   xdist_rs-<version>-py3-none-manylinux_<glibc>_<arch>.whl
#     <env>/bin/xdist                   the binary (maturin `bindings = "bin"`)
#     <env>/lib/xdist-plugins/*.so  the first-party plugins, NOT loaded by default
#                                       (the binary searches <binary dir>/../lib/xdist/plugins):
#                                       each changes a run (crash-retry reruns crashed tests,
#                                       node-lifecycle prints a table), so the user names the
#                                       ones wanted: --plugin, XDIST_PLUGINS, [tool.xdist]
#     site-packages/xdist_rs/           `python -m xdist_rs`, the pytest hand-off plugin
#
# The platform tag is the lowest manylinux tag the binary's glibc symbol versions allow
# (maturin's audit of the linked binary): pip installs it on every Linux with that glibc or
# newer. No zig and no manylinux container: the wheel says what it needs, honestly.
#
# usage: packaging/wheel/build.sh [OUT_DIR]     (default: $CARGO_TARGET_DIR/wheels)
# Env: CARGO_TARGET_DIR, MATURIN (default: maturin on PATH; dev/requirements-wheel.txt pins it).
# Prints the wheel's path on its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac
out=${1:-$CARGO_TARGET_DIR/wheels}
mkdir -p "$out"
out=$(cd "$out" && pwd)
maturin=${MATURIN:-maturin}
command -v "$maturin" >/dev/null || { echo "build.sh: $maturin not found: pip install -r dev/requirements-wheel.txt" >&2; exit 1; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

plugin_crates=()
for d in plugins/*/; do plugin_crates+=("$(basename "$d")"); done
cargo build --release "${plugin_crates[@]/#/-p=}" >&2

# The `data` directory of pyproject.toml's [tool.maturin]: its data/ becomes the install prefix.
plugin_dir=$root/packaging/wheel/data/data/lib/xdist-plugins
rm -f "$plugin_dir"/*.so
for c in "${plugin_crates[@]}"; do
    cp "$CARGO_TARGET_DIR/release/lib${c//-/_}.so" "$plugin_dir/"
done
strip --strip-unneeded "$plugin_dir"/*.so 2>/dev/null || true

rm -f "$out"/xdist_rs-"$version"-*.whl
"$maturin" build --release --locked --out "$out" >&2
wheel=$(ls "$out"/xdist_rs-"$version"-*.whl)
echo "$wheel"
