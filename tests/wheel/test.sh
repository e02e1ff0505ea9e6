#!/usr/bin/env bash
# Wheel test (issue 18). Part of dev/test.sh. Network: PyPI only (maturin, pytest, pytest-xdist).
#
# Builds the xdist-rs wheel once (packaging/wheel/build.sh, maturin pinned in
# dev/requirements-wheel.txt, reusing cargo's release build), installs it into two fresh venvs
# (A: pytest only, B: pytest + pytest-xdist), then, with no --python and no activated venv:
#  1. the wheel's layout: the `xdist` script, the plugins, no `xdist` package, a manylinux tag;
#  2. `A/bin/xdist -n 2` on examples/demo with nothing on PATH: the demo's summary (as serial
#     pytest's) from A's interpreter; `python -m xdist_rs -n 2` compared per test with serial
#     pytest (compare_examples.rs, demo) in A and B;
#  3. `python -m pytest -n 2` with XDIST_NATIVE=1 compared per test and by summary with serial
#     pytest on every examples/ suite (compare_examples.rs) in A and B;
#  4. the ini opt-in (`xdist_native = true`): `A/bin/pytest -n 2` goes through xdist (header);
#     without it, A refuses `-n 2` with a usage error, B runs pytest-xdist untouched;
#     never a loop: `addopts = -n 2` with the opt-in (workers, --co), a controller session;
#  5. `python -m xdist_rs --version` from a venv, a `--target` and a `--user` install; its error
#     without the binary;
#  6. `pip uninstall` leaves A and B as they were, and pytest-xdist's files are byte-identical
#     before, during and after.
# Env: CARGO_TARGET_DIR (default target), PYTHON (base interpreter, default python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac
base=${PYTHON:-python3}
# The interpreter itself (not a launcher such as pyenv's shim, which needs PATH).
base_exe=$("$base" -c 'import sys; print(sys.executable)')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xdist-wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
step() { printf '\n== wheel: %s\n' "$*"; }
fail() { echo "wheel test FAILED: $*" >&2; exit 1; }
pip_q() { "$1" -m pip install --quiet --disable-pip-version-check --no-input "${@:2}"; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

# maturin, pinned, in a venv kept between runs (rebuilt when the pin changes).
tools=$root/.venv-wheel-tools
want=$(sha256sum dev/requirements-wheel.txt | cut -d' ' -f1)
if [ "$(cat "$tools/.requirements.sha256" 2>/dev/null)" != "$want" ] || [ ! -x "$tools/bin/maturin" ]; then
    step "maturin into $tools"
    rm -rf "$tools"
    "$base" -m venv "$tools"
    echo '*' >"$tools/.gitignore"
    pip_q "$tools/bin/python" -r dev/requirements-wheel.txt
    echo "$want" >"$tools/.requirements.sha256"
fi

step "packaging/wheel/build.sh"
wheel=$(MATURIN=$tools/bin/maturin packaging/wheel/build.sh "$tmp/wheels" 2>"$tmp/build.log" | tail -1) ||
    { cat "$tmp/build.log"; fail "build.sh"; }
echo "$wheel"
[[ "$(basename "$wheel")" =~ ^xdist_rs-$version-py3-none-manylinux_[0-9]+_[0-9]+_[a-z0-9_]+\.whl$ ]] ||
    fail "unexpected wheel name (want py3-none-manylinux_*): $wheel"
files=$("$base" -m zipfile -l "$wheel" | awk 'NR > 1 { print $1 }')
grep -qx "xdist_rs-$version.data/scripts/xdist" <<<"$files" || fail "the wheel has no xdist script"
for lib in auto_workers crash_retry node_lifecycle priority_scheduler; do
    grep -qx "xdist_rs-$version.data/data/lib/xdist-plugins/lib$lib.so" <<<"$files" || fail "no lib$lib.so"
done
if grep -E '^xdist/|/lib/xdist/plugins/' <<<"$files"; then fail "the wheel ships an xdist package or auto-loaded plugins"; fi
grep -Evq "^(xdist_rs/|xdist_rs-$version\.(data|dist-info)/)" <<<"$files" && fail "unexpected top-level files: $files"

# A venv's directories and files, the files with checksums.
snapshot() { (cd "$1" && find . -type d | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
xdist_files() { # VENV: pytest-xdist's files (from its RECORD) with checksums
    local sp
    sp=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    (cd "$sp" && cut -d, -f1 pytest_xdist-*.dist-info/RECORD | grep -v '__pycache__' | sort | xargs sha256sum)
}
make_venv() { # DIR REQUIREMENTS
    "$base" -m venv "$1"
    pip_q "$1/bin/python" -r "$2"
    snapshot "$1" >"$1.before"
}
step "fresh venvs: A (dev/requirements.txt), B (dev/requirements-xdist.txt)"
A=$tmp/venv-a
B=$tmp/venv-b
make_venv "$A" dev/requirements.txt
make_venv "$B" dev/requirements-xdist.txt
xdist_files "$B" >"$tmp/xdist-files.before"
[ -s "$tmp/xdist-files.before" ] || fail "no pytest-xdist files found in B"
for v in "$A" "$B"; do pip_q "$v/bin/python" "$wheel"; done
xdist_files "$B" | diff "$tmp/xdist-files.before" - || fail "installing the wheel changed pytest-xdist's files"
[ -x "$A/bin/xdist" ] && [ -d "$A/lib/xdist-plugins" ] || fail "the wheel did not install bin/xdist and lib/xdist-plugins"

out=$("$A/bin/xdist" plugins)
[ "$out" = "${out#no plugins enabled}" ] && fail "installing the wheel made xdist load plugins: $out"
out=$("$A/bin/xdist" plugins --plugin "$A/lib/xdist-plugins/libcrash_retry.so")
grep -q '^crash-retry ' <<<"$out" || fail "the wheel's crash-retry does not load: $out"
echo "plugins: none loaded by default; $(head -1 <<<"$out")"

# Nothing of the user's setup: no venv, no interpreter on PATH, no xdist settings.
mkdir -p "$tmp/empty-path"
timeout=$(command -v timeout) || fail "coreutils timeout is required"
clean() { env -i HOME="$tmp" LANG=C.UTF-8 PATH="$tmp/empty-path" PYTHONDONTWRITEBYTECODE=1 "$@"; }
summary() { grep -E '^=+ .* in [0-9.]+s' "$1" | tail -1 | sed -E 's/ in [0-9.]+s.*//; s/^=+ //'; }

step "A/bin/xdist -n 2 examples/demo (no --python, no VIRTUAL_ENV, nothing on PATH)"
set +e
(cd examples/demo && clean "$A/bin/python" -m pytest -p no:cacheprovider >"$tmp/serial.log" 2>&1)
(cd examples/demo && clean "$A/bin/xdist" -n 2 -p no:cacheprovider >"$tmp/demo.log" 2>&1)
rc=$?
set -e
tail -1 "$tmp/demo.log"
[ "$rc" = 1 ] || { cat "$tmp/demo.log"; fail "xdist -n 2 examples/demo: exit $rc (want 1)"; }
[ "$(summary "$tmp/demo.log")" = "$(summary "$tmp/serial.log")" ] ||
    fail "demo summary '$(summary "$tmp/demo.log")' differs from serial '$(summary "$tmp/serial.log")'"
grep -q "created: 2/2 workers" "$tmp/demo.log" || fail "not a 2-worker xdist run"
grep -qF -- "-- Python $("$A/bin/python" -c 'import platform; print(platform.python_version())') $A/bin/python" "$tmp/demo.log" ||
    fail "the workers did not run A's interpreter ($A/bin/python)"

# compare_examples.rs: per-test outcomes, summary counts and sections against serial pytest, in
# A (XDIST_TEST_PYTHON) and B (XDIST_TEST_PYTHON_WITH_XDIST).
compare() { # DISTRIBUTED_CMD [SUITE...]
    local cmd=$1
    shift
    XDIST_TEST_DISTRIBUTED_CMD=$cmd XDIST_TEST_PYTHON=$A/bin/python XDIST_TEST_PYTHON_WITH_XDIST=$B/bin/python \
        cargo test -q -p xdist-cli --test compare_examples -- --exact "$@" >"$tmp/compare.log" 2>&1 ||
        { cat "$tmp/compare.log"; fail "compare_examples with '$cmd'"; }
    grep -E '^test result' "$tmp/compare.log"
}
step "python -m xdist_rs -n 2 vs serial pytest (demo, A and B)"
compare '{python} -m xdist_rs -n 2' demo
step "XDIST_NATIVE=1 python -m pytest -n 2 vs serial pytest (every examples/ suite, A and B)"
suites=$(sed -n '/^suite_tests!(/,/^);/ s/^    \([a-z_]*\),$/\1/p' crates/xdist-cli/tests/compare_examples.rs)
[ "$(wc -w <<<"$suites")" -ge 10 ] || fail "could not read the suite list of compare_examples.rs: $suites"
# shellcheck disable=SC2086
XDIST_NATIVE=1 compare '{python} -m pytest -n 2' $suites

step "the ini opt-in: xdist_native = true"
cp -r examples/demo "$tmp/demo"
printf 'xdist_native = true\n' >>"$tmp/demo/pytest.ini"
set +e
(cd "$tmp/demo" && clean "$A/bin/pytest" -n 2 -p no:cacheprovider >"$tmp/optin-a.log" 2>&1)
rc_a=$?
(cd "$tmp/demo" && clean "$B/bin/pytest" -n 2 -p no:cacheprovider >"$tmp/optin-b.log" 2>&1)
rc_b=$?
(cd examples/demo && clean XDIST_NATIVE=1 "$B/bin/pytest" -n 2 -p no:cacheprovider >"$tmp/optin-env.log" 2>&1)
(cd "$tmp/demo" && clean XDIST_NATIVE=0 "$B/bin/pytest" -n 2 -p no:cacheprovider >"$tmp/optout-env.log" 2>&1)
(cd examples/demo && clean "$A/bin/pytest" -n 2 -p no:cacheprovider >"$tmp/noopt-a.log" 2>&1)
rc_noopt_a=$?
(cd examples/demo && clean "$B/bin/pytest" -n 2 -p no:cacheprovider >"$tmp/noopt-b.log" 2>&1)
rc_noopt_b=$?
set -e
for v in a b env; do
    log=$tmp/optin-$v.log
    grep -q 'handed off to xdist' "$log" || { cat "$log"; fail "pytest -n 2 ($v) with the opt-in: no hand-off in the header"; }
    grep -q "created: 2/2 workers" "$log" || fail "pytest -n 2 ($v): not 2 workers"
    [ "$(summary "$log")" = "$(summary "$tmp/serial.log")" ] || fail "pytest -n 2 ($v) with the opt-in: summary '$(summary "$log")'"
done
[ "$rc_a" = 1 ] && [ "$rc_b" = 1 ] || fail "pytest -n 2 with the opt-in: exit $rc_a / $rc_b (want 1)"
echo "pytest -n 2 with the opt-in: $(grep 'handed off' "$tmp/optin-a.log")"
[ "$rc_noopt_a" = 4 ] && grep -q 'needs pytest-xdist or the xdist hand-off' "$tmp/noopt-a.log" ||
    { cat "$tmp/noopt-a.log"; fail "pytest -n 2 without pytest-xdist nor opt-in: want the usage error (exit 4), got $rc_noopt_a"; }
head -1 "$tmp/noopt-a.log"
for log in "$tmp/noopt-b.log" "$tmp/optout-env.log"; do
    if grep -q 'handed off' "$log" || ! grep -q '^plugins: .*xdist-3' "$log"; then
        cat "$log"
        fail "pytest -n 2 without the opt-in (or with XDIST_NATIVE=0) must be pytest-xdist's run"
    fi
done
[ "$rc_noopt_b" = 1 ] && [ "$(summary "$tmp/noopt-b.log")" = "$(summary "$tmp/serial.log")" ] ||
    fail "pytest-xdist's run (exit $rc_noopt_b): '$(summary "$tmp/noopt-b.log")'"
echo "without the opt-in, B runs pytest-xdist: $(summary "$tmp/noopt-b.log")"

step "never loops: addopts = -n 2 with the opt-in (workers, summary step, --co, controller session)"
cp -r examples/demo "$tmp/demo-addopts"
printf 'addopts = -n 2\nxdist_native = true\n' >>"$tmp/demo-addopts/pytest.ini"
set +e
# The workers' own sessions see `-n 2` from addopts too; --co makes xdist run plain pytest.
(cd "$tmp/demo-addopts" && clean "$timeout" 120 "$A/bin/pytest" -p no:cacheprovider -rA >"$tmp/addopts.log" 2>&1)
rc=$?
(cd "$tmp/demo-addopts" && clean "$timeout" 120 "$A/bin/pytest" -p no:cacheprovider --co -q >"$tmp/addopts-co.log" 2>&1)
rc_co=$?
(cd examples/controller_hooks && clean XDIST_NATIVE=1 "$timeout" 120 "$A/bin/pytest" -n 2 -p no:cacheprovider >"$tmp/ctl.log" 2>&1)
rc_ctl=$?
(cd examples/demo && clean XDIST_NATIVE=maybe "$A/bin/pytest" -n 2 >"$tmp/bad-env.log" 2>&1)
rc_bad=$?
set -e
[ "$rc" = 1 ] && grep -q 'handed off to xdist' "$tmp/addopts.log" && [ "$(summary "$tmp/addopts.log")" = "$(summary "$tmp/serial.log")" ] ||
    { cat "$tmp/addopts.log"; fail "pytest with addopts = -n 2: exit $rc, '$(summary "$tmp/addopts.log")'"; }
[ "$(grep -c 'test session starts' "$tmp/addopts.log")" = 1 ] || fail "more than one session header: a nested run"
[ "$rc_co" = 0 ] && grep -q '^42 tests collected' "$tmp/addopts-co.log" || { cat "$tmp/addopts-co.log"; fail "pytest --co: exit $rc_co"; }
[ "$rc_ctl" = 1 ] && grep -q 'handed off to xdist' "$tmp/ctl.log" || { cat "$tmp/ctl.log"; fail "controller_hooks: exit $rc_ctl"; }
echo "addopts: $(summary "$tmp/addopts.log"); --co: $(tail -1 "$tmp/addopts-co.log"); controller session: $(summary "$tmp/ctl.log")"
[ "$rc_bad" = 4 ] && grep -q "XDIST_NATIVE='maybe': set it to 1" "$tmp/bad-env.log" || { cat "$tmp/bad-env.log"; fail "XDIST_NATIVE=maybe: exit $rc_bad"; }
head -1 "$tmp/bad-env.log"

step "python -m xdist_rs --version (venv, --target, --user)"
want_version="xdist $version (plugin ABI"
for v in "$A" "$B"; do
    out=$(clean "$v/bin/python" -m xdist_rs --version)
    [[ "$out" == "$want_version"* ]] || fail "python -m xdist_rs --version in $v: '$out'"
done
echo "venv: $out"
pip_q "$A/bin/python" --no-deps --target "$tmp/target" "$wheel"
out=$(clean PYTHONPATH="$tmp/target" "$A/bin/python" -m xdist_rs --version)
[[ "$out" == "$want_version"* ]] || fail "--target: '$out'"
echo "--target: $out"
# The user scheme needs an interpreter outside any venv: the base one, with its user base here.
if clean PYTHONUSERBASE="$tmp/user" "$base_exe" -m pip install --quiet --disable-pip-version-check \
    --no-deps --user "$wheel" >"$tmp/user.log" 2>&1; then
    out=$(clean PYTHONUSERBASE="$tmp/user" "$base_exe" -m xdist_rs --version)
    [[ "$out" == "$want_version"* ]] || fail "--user: '$out'"
    echo "--user: $out"
else
    echo "(--user: the base interpreter refuses user installs: $(tail -1 "$tmp/user.log"))"
fi
set +e
out=$(clean PYTHONPATH="$root/python" "$base_exe" -s -m xdist_rs --version 2>&1)
rc=$?
set -e
[ "$rc" = 4 ] && grep -q 'the xdist binary is not installed' <<<"$out" || fail "no binary: exit $rc, '$out'"
echo "no binary: $out"

step "pip uninstall xdist-rs"
for v in "$A" "$B"; do
    "$v/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y xdist-rs
    # The test runs may have compiled other packages' bytecode: only what pip installed counts.
    snapshot "$v" | grep -v '/__pycache__' >"$v.after"
    grep -v '/__pycache__' "$v.before" | diff - "$v.after" || fail "pip uninstall left $v changed"
done
echo "A and B are as before the install"
xdist_files "$B" | diff "$tmp/xdist-files.before" - || fail "pytest-xdist's files changed"
echo "pytest-xdist's $(wc -l <"$tmp/xdist-files.before") files are byte-identical"
echo "wheel test passed"
