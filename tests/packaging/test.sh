#!/usr/bin/env bash
# Packaging test (issue 9). Part of dev/test.sh.
#
# 1. Always: `make install DESTDIR=<tmp> PREFIX=/usr/local`, then checks the installed tree
#    (--version with the plugin ABI, `xdist plugins --paths` naming $PREFIX/lib/xdist/plugins,
#    the plugins loaded from there, the man page documenting every option `xdist --help`
#    lists, completions that parse), then `make uninstall` and checks nothing is left.
# 2. As root with dpkg: packaging/deb/build.sh, both packages installed into a throw-away dpkg
#    root (`dpkg --root`; with XDIST_PKG_TEST_SYSTEM=1 into this machine instead), then the
#    installed `xdist --version`, `man -l` on the installed page (man-db is installed with apt
#    when missing), `xdist plugins` showing the packaged plugins from the system directory and
#    a small suite run with `--plugin crash-retry --plugin-opt crash-retry.max-reruns=1` using
#    the packaged crash-retry, the same suite without `--plugin` using none of the installed
#    plugins (available, not enabled); then both packages are purged and nothing may be left.
#    XDIST_PKG_TEST_DEB=0 skips this part, =1 forces it.
#
# Env: CARGO_TARGET_DIR (default target), XDIST_TEST_PYTHON (default .venv/bin/python).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xdist-packaging.XXXXXX")
system_installed=0
cleanup() {
    if [ "$system_installed" = 1 ]; then
        dpkg --purge xdist-plugins xdist >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# Nothing from the user's own setup may leak into the runs (but cargo keeps its toolchain).
if [ -z "${RUSTUP_HOME:-}" ] && [ -d "$HOME/.rustup" ]; then export RUSTUP_HOME=$HOME/.rustup; fi
if [ -z "${CARGO_HOME:-}" ] && [ -d "$HOME/.cargo" ]; then export CARGO_HOME=$HOME/.cargo; fi
export HOME=$tmp/home
mkdir -p "$HOME"
unset XDG_DATA_HOME XDIST_PLUGINS XDIST_PYTHON PYTEST_ADDOPTS VIRTUAL_ENV

step() { printf '\n== packaging: %s\n' "$*"; }
fail() { echo "packaging test FAILED: $*" >&2; exit 1; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

if ! command -v make >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "apt-get install make"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make >/dev/null; }
fi
command -v make >/dev/null || fail "make is required"

python=${XDIST_TEST_PYTHON:-$root/.venv/bin/python}
if [ ! -x "$python" ] && [ -x dev/venv.sh ]; then dev/venv.sh; fi
[ -x "$python" ] || fail "no Python with pytest at $python (run dev/venv.sh or set XDIST_TEST_PYTHON)"

# The options `xdist --help` lists (short and long), one a line.
help_options() { # XDIST
    "$1" --help | grep -E '^ +-' | grep -oE '(^|[ ,])--?[A-Za-z0-9][A-Za-z0-9-]*' | tr -d ' ,' | sort -u
}

# Checks the man page PAGE (plain or .gz) against `XDIST --help`: every option is documented,
# and the page renders without warnings when man is there.
check_man() { # XDIST PAGE
    local xdist=$1 page=$2 text opts missing=""
    opts=$(help_options "$xdist")
    [ "$(wc -l <<<"$opts")" -ge 10 ] || fail "xdist --help lists too few options: $opts"
    if command -v man >/dev/null; then
        local warnings
        warnings=$(MANWIDTH=300 man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l $page failed: $warnings"
        [ -z "$warnings" ] || fail "man --warnings -l $page: $warnings"
        text=$(MANWIDTH=300 MAN_KEEP_FORMATTING= man -P cat -l "$page" 2>/dev/null | sed 's/.\x08//g')
        grep -q '^NAME' <<<"$text" || fail "man -l $page shows no NAME section"
        grep -q '^OPTIONS' <<<"$text" || fail "man -l $page shows no OPTIONS section"
    else
        echo "(man not available: checking the roff source)"
        text=$(zcat -f "$page" | sed 's/\\-/-/g; s/\\f[BIRP]//g')
    fi
    local o
    for o in $opts; do
        grep -qE -- "(^|[^A-Za-z0-9-])$o([^A-Za-z0-9-]|\$)" <<<"$text" || missing="$missing $o"
    done
    [ -z "$missing" ] || fail "the man page $page does not document:$missing"
    echo "man page documents all $(wc -l <<<"$opts") options of xdist --help"
}

check_version() { # XDIST
    local v
    v=$("$1" --version)
    [[ "$v" =~ ^xdist\ $version\ \(plugin\ ABI\ [0-9]+\.[0-9]+\)$ ]] || fail "unexpected --version: '$v'"
    echo "$v"
}

# `xdist plugins` run by XDIST lists the four first-party plugins from DIR (a system dir).
check_plugins() { # XDIST DIR
    local out dir n
    dir=$(realpath "$2")
    out=$("$1" plugins)
    echo "$out"
    n=0
    for lib in auto_workers crash_retry node_lifecycle priority_scheduler; do
        local line path
        line=$(grep -F "/lib$lib.so" <<<"$out") || fail "xdist plugins does not list lib$lib.so"
        grep -q '(SystemDir, ABI ' <<<"$line" || fail "lib$lib.so not loaded from a system dir: $line"
        path=$(realpath "${line##* }")
        [ "$path" = "$dir/lib$lib.so" ] || fail "lib$lib.so loaded from $path, expected $dir"
        n=$((n + 1))
    done
    echo "xdist plugins: $n plugins from $dir"
}

check_completions() { # PREFIX_DIR
    bash -n "$1/share/bash-completion/completions/xdist" || fail "bash completion does not parse"
    if command -v zsh >/dev/null; then zsh -n "$1/share/zsh/site-functions/_xdist" || fail "zsh completion"; fi
    if command -v fish >/dev/null; then fish -n "$1/share/fish/vendor_completions.d/xdist.fish" || fail "fish completion"; fi
    grep -q -- 'numprocesses' "$1/share/fish/vendor_completions.d/xdist.fish" || fail "fish completion lacks --numprocesses"
    grep -q -- '--numprocesses' "$1/share/zsh/site-functions/_xdist" || fail "zsh completion lacks --numprocesses"
}

# ---------------------------------------------------------------------------------------------
step "make install DESTDIR=$tmp/dest PREFIX=/usr/local"
dest=$tmp/dest
make --no-print-directory install DESTDIR="$dest" PREFIX=/usr/local >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "make install"; }
tail -1 "$tmp/install.log"
pfx=$dest/usr/local
for f in bin/xdist share/man/man1/xdist.1 share/bash-completion/completions/xdist \
    share/zsh/site-functions/_xdist share/fish/vendor_completions.d/xdist.fish \
    share/doc/xdist/plugins.md share/doc/xdist/CHANGELOG.md \
    share/doc/xdist/plugin-api/xdist_plugin_api/index.html; do
    [ -f "$pfx/$f" ] || fail "make install did not install $f"
done
check_version "$pfx/bin/xdist"
paths=$("$pfx/bin/xdist" plugins --paths)
echo "$paths"
[ "$(sed -n 1p <<<"$paths")" = "$HOME/.local/share/xdist/plugins" ] || fail "first plugin dir is not the user dir"
[ "$(realpath -m "$(sed -n 2p <<<"$paths")")" = "$pfx/lib/xdist/plugins" ] ||
    fail "the system plugin dir derived from the binary is not \$PREFIX/lib/xdist/plugins"
check_plugins "$pfx/bin/xdist" "$pfx/lib/xdist/plugins"
check_man "$pfx/bin/xdist" "$pfx/share/man/man1/xdist.1"
check_completions "$pfx"

step "make uninstall DESTDIR=$tmp/dest PREFIX=/usr/local"
make --no-print-directory uninstall DESTDIR="$dest" PREFIX=/usr/local >"$tmp/uninstall.log" 2>&1 ||
    { cat "$tmp/uninstall.log"; fail "make uninstall"; }
tail -1 "$tmp/uninstall.log"
left=$(find "$dest" -mindepth 1)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "nothing left under $dest"

# ---------------------------------------------------------------------------------------------
want_deb=${XDIST_PKG_TEST_DEB:-auto}
if [ "$want_deb" = auto ]; then
    want_deb=0
    if [ "$(id -u)" = 0 ] && command -v dpkg-deb >/dev/null && command -v dpkg >/dev/null; then want_deb=1; fi
fi
if [ "$want_deb" != 1 ]; then
    step "Debian packages: skipped (needs root and dpkg; XDIST_PKG_TEST_DEB=1 forces)"
    echo "packaging test passed (make install/uninstall only)"
    exit 0
fi

if ! command -v man >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "apt-get install man-db"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends man-db >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends man-db >/dev/null; } ||
        echo "(could not install man-db: the man page is checked from its roff source)"
fi

step "packaging/deb/build.sh"
debs=$(packaging/deb/build.sh "$tmp/debs" 2>"$tmp/build.log" | grep '\.deb$') || { cat "$tmp/build.log"; fail "build.sh"; }
echo "$debs"
arch=$(dpkg --print-architecture)
main_deb=$tmp/debs/xdist_${version}_${arch}.deb
plugins_deb=$tmp/debs/xdist-plugins_${version}_${arch}.deb
[ -f "$main_deb" ] && [ -f "$plugins_deb" ] || fail "build.sh did not write $main_deb and $plugins_deb"
dpkg-deb -f "$plugins_deb" Depends | grep -q "xdist (= $version)" || fail "xdist-plugins does not depend on xdist"
main_files=$(dpkg-deb -c "$main_deb")
plugin_files=$(dpkg-deb -c "$plugins_deb")
if grep -q ' ./usr/lib/' <<<"$main_files"; then fail "the xdist package ships files in /usr/lib (plugins belong to xdist-plugins)"; fi
grep -q ' ./usr/lib/xdist/plugins/libcrash_retry.so$' <<<"$plugin_files" || fail "xdist-plugins lacks libcrash_retry.so"
grep -q ' ./usr/share/man/man1/xdist.1.gz$' <<<"$main_files" || fail "xdist lacks its man page"

# Docker images exclude /usr/share/{man,doc} from installs; keep ours.
dpkg_opts=(--path-include='*xdist*')
if [ "${XDIST_PKG_TEST_SYSTEM:-0}" = 1 ]; then
    step "dpkg -i (this machine)"
    dpkg-query -W -f='${Status}' xdist 2>/dev/null | grep -q ' installed' && fail "xdist is already installed here; not touching it"
    R=""
    dpkg=(dpkg)
    system_installed=1
else
    R=$tmp/root
    step "dpkg --root=$R -i"
    mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
    # The throw-away root's dpkg database knows this machine's libc and libgcc, so the
    # packages' real dependencies are checked (no --force-depends).
    dpkg-query -s libc6 libgcc-s1 >"$R/var/lib/dpkg/status" 2>/dev/null || : >"$R/var/lib/dpkg/status"
    dpkg=(dpkg --root="$R" --log=/dev/null)
fi
"${dpkg[@]}" "${dpkg_opts[@]}" -i "$main_deb" "$plugins_deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i"; }
"${dpkg[@]}" -l xdist xdist-plugins | grep -E '^ii +xdist(-plugins)? ' || fail "packages not installed"
xdist=$R/usr/bin/xdist

step "installed xdist --version, man -l, xdist plugins"
check_version "$xdist"
[ -f "$R/usr/share/man/man1/xdist.1.gz" ] || fail "man page not installed"
if command -v man >/dev/null; then
    MANWIDTH=80 man -P cat -l "$R/usr/share/man/man1/xdist.1.gz" 2>/dev/null | sed 's/.\x08//g' | sed -n '1,8p'
fi
check_man "$xdist" "$R/usr/share/man/man1/xdist.1.gz"
check_plugins "$xdist" "$R/usr/lib/xdist/plugins"

step "a suite with the packaged crash-retry (--plugin-opt crash-retry.max-reruns=1)"
suite=$tmp/suite
mkdir -p "$suite"
printf '[pytest]\n' >"$suite/pytest.ini"
cat >"$suite/test_pkg.py" <<'EOF'
import os, pathlib

MARK = pathlib.Path(__file__).parent / "crashed-once"

def test_ok_1(): pass

def test_crash_once():
    if not MARK.exists():
        MARK.write_text("x")
        os._exit(1)

def test_ok_2(): pass

def test_ok_3(): pass
EOF
set +e
(cd "$suite" && "$xdist" -n 2 --python "$python" --plugin crash-retry --plugin-opt crash-retry.max-reruns=1 -p no:cacheprovider) >"$tmp/suite.log" 2>&1
rc=$?
set -e
tail -3 "$tmp/suite.log"
[ "$rc" = 0 ] || { cat "$tmp/suite.log"; fail "suite exit $rc (want 0)"; }
[ -f "$suite/crashed-once" ] || fail "the test never crashed"
summary=$(tail -1 "$tmp/suite.log")
grep -q '4 passed' <<<"$summary" && grep -q '1 rerun' <<<"$summary" ||
    { cat "$tmp/suite.log"; fail "want 4 passed, 1 rerun: $summary"; }

step "installed plugins are available, not enabled"
set +e
(cd "$suite" && rm -f crashed-once && "$xdist" -n 2 --python "$python" -p no:cacheprovider) >"$tmp/suite.log" 2>&1
rc=$?
set -e
summary=$(tail -1 "$tmp/suite.log")
[ "$rc" = 1 ] && grep -q '1 failed, 3 passed' <<<"$summary" && ! grep -q 'rerun' <<<"$summary" ||
    { cat "$tmp/suite.log"; fail "a run naming no plugin used an installed one (exit $rc): $summary"; }
grep -q 'installed, not enabled' <<<"$("$xdist" plugins)" || fail "xdist plugins does not mark installed plugins"

step "dpkg --purge"
"${dpkg[@]}" --purge xdist-plugins xdist >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg --purge"; }
system_installed=0
for p in xdist xdist-plugins; do
    if "${dpkg[@]}" -s "$p" >/dev/null 2>&1; then fail "$p still known to dpkg after purge"; fi
done
if [ -n "$R" ]; then
    left=$(find "$R" -mindepth 1 -path "$R/var" -prune -o -print)
    [ -z "$left" ] || fail "left in $R after purge: $left"
    echo "nothing left in $R (outside dpkg's database)"
else
    left=$(printf '%s\n%s\n' "$main_files" "$plugin_files" | awk '$1 !~ /^d/ { print substr($6, 2) }' |
        while read -r f; do if [ -e "$f" ]; then echo "$f"; fi; done)
    [ -z "$left" ] || fail "left after purge: $left"
    [ ! -e /usr/lib/xdist ] || fail "/usr/lib/xdist left after purge"
    echo "no packaged file left on this machine"
fi
echo "packaging test passed"
