#!/usr/bin/env bash
# Install/uninstall step of the Makefile (see packaging/README.md); not meant to be run alone.
#
#   install.sh install     copies the built files under $DESTDIR$PREFIX and records every file it
#                          wrote and every directory it created in $MANIFEST
#   install.sh uninstall   removes exactly what $MANIFEST lists (files, then the directories
#                          install created, deepest first, when empty), then the manifest
#
# Manifest lines are `f PATH` or `d PATH`, PATH without $DESTDIR. Reinstalling merges the
# manifests, so uninstall also removes files an earlier install of another version wrote.
set -euo pipefail

: "${PREFIX:?}" "${TARGET_DIR:?}" "${MANIFEST_PATH:?}"
DESTDIR=${DESTDIR:-}
case "$PREFIX" in /*) ;; *) echo "install.sh: PREFIX must be absolute, got '$PREFIX'" >&2; exit 2 ;; esac
PREFIX=${PREFIX%/}
manifest=$DESTDIR$MANIFEST_PATH

install_all() {
    local rel=$TARGET_DIR/release gen=$TARGET_DIR/generated
    local entries=()
    if [ -n "$DESTDIR" ]; then mkdir -p "$DESTDIR"; fi # a staging root is not ours to record
    # mkdir -p, remembering each directory that did not exist.
    mkdirs() {
        local d=$1 missing=()
        while [ -n "$d" ] && [ "$d" != / ] && [ ! -d "$DESTDIR$d" ]; do
            missing=("$d" "${missing[@]}")
            d=$(dirname "$d")
        done
        for d in "${missing[@]}"; do
            mkdir -m 755 "$DESTDIR$d"
            entries+=("d $d")
        done
    }
    put() { # MODE SRC DEST
        mkdirs "$(dirname "$3")"
        install -m "$1" "$2" "$DESTDIR$3"
        entries+=("f $3")
    }
    put 755 "$rel/xdist" "$PREFIX/bin/xdist"
    put 644 "$gen/xdist.1" "$PREFIX/share/man/man1/xdist.1"
    put 644 "$gen/xdist.bash" "$PREFIX/share/bash-completion/completions/xdist"
    put 644 "$gen/_xdist" "$PREFIX/share/zsh/site-functions/_xdist"
    put 644 "$gen/xdist.fish" "$PREFIX/share/fish/vendor_completions.d/xdist.fish"
    local lib
    for lib in $PLUGIN_LIBS; do
        put 644 "$rel/lib$lib.so" "$PREFIX/lib/xdist/plugins/lib$lib.so"
    done
    local doc=$PREFIX/share/doc/xdist
    put 644 README.md "$doc/README.md"
    put 644 CHANGELOG.md "$doc/CHANGELOG.md"
    put 644 docs/plugins.md "$doc/plugins.md"
    if [ "${API_DOCS:-1}" = 1 ]; then
        local src=$gen/plugin-api f
        while IFS= read -r -d '' f; do
            put 644 "$src/$f" "$doc/plugin-api/$f"
        done < <(cd "$src" && find . -type f ! -name .lock -printf '%P\0' | sort -z)
    fi
    # The manifest: earlier entries first, then the new ones it did not list.
    mkdirs "$(dirname "$MANIFEST_PATH")"
    entries+=("f $MANIFEST_PATH")
    local tmp
    tmp=$(mktemp)
    { [ -f "$manifest" ] && cat "$manifest"; printf '%s\n' "${entries[@]}"; } | awk '!seen[$0]++' >"$tmp"
    install -m 644 "$tmp" "$manifest"
    rm -f "$tmp"
    echo "installed $(grep -c '^f ' "$manifest") files under $DESTDIR$PREFIX (manifest: $manifest)"
}

uninstall_all() {
    if [ ! -f "$manifest" ]; then
        echo "install.sh: no manifest at $manifest: nothing installed there (or installed with another PREFIX/DESTDIR/MANIFEST)" >&2
        exit 1
    fi
    local kind path n=0 list
    list=$(cat "$manifest")
    while read -r kind path; do
        [ "$kind" = f ] || continue
        case "$path" in "$PREFIX"/*) ;; *) echo "install.sh: refusing to remove $path (outside $PREFIX)" >&2; continue ;; esac
        if [ -e "$DESTDIR$path" ] || [ -L "$DESTDIR$path" ]; then
            rm -f "$DESTDIR$path"
            n=$((n + 1))
        fi
    done <<<"$list"
    # Directories install created, deepest first; kept when something else lives in them.
    grep '^d ' <<<"$list" | cut -c3- | awk '{ print gsub("/", "/"), $0 }' | sort -rn | cut -d' ' -f2- |
        while IFS= read -r path; do
            # under PREFIX, or PREFIX and its parents (created inside an empty DESTDIR)
            case "$PREFIX/" in "$path"/*) ;; *) case "$path" in "$PREFIX"/*) ;; *) continue ;; esac ;; esac
            if [ -d "$DESTDIR$path" ] && ! rmdir "$DESTDIR$path" 2>/dev/null; then
                echo "install.sh: kept $DESTDIR$path (not empty)" >&2
            fi
        done
    echo "removed $n files from $DESTDIR$PREFIX"
}

case "${1:-}" in
    install) install_all ;;
    uninstall) uninstall_all ;;
    *) echo "usage: install.sh install|uninstall" >&2; exit 2 ;;
esac
