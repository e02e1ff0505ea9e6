#!/usr/bin/env bash
# Builds the Debian packages from this workspace, offline, with dpkg-deb:
#
#   xdist_<version>_<arch>.deb          /usr/bin/xdist, man page, bash/zsh/fish completions, docs
#                                       (incl. the plugin API's rustdoc); Provides xdist-plugin-abi-<major>
#   xdist-plugins_<version>_<arch>.deb  the first-party plugins in /usr/lib/xdist/plugins
#
# usage: packaging/deb/build.sh [OUT_DIR]     (default: $CARGO_TARGET_DIR/deb, target/deb)
# Env: CARGO_TARGET_DIR, DEB_MAINTAINER ("Name <email>"), API_DOCS (1/0, see the Makefile).
# Both packages come from one staged `make install DESTDIR=<stage> PREFIX=/usr`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac
out=${1:-$CARGO_TARGET_DIR/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
maintainer=${DEB_MAINTAINER:-xdist developers <xdist-rs@users.noreply.github.com>}
homepage=https://github.com/xdist-rs/xdist

for tool in dpkg-deb dpkg make gzip strip; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is required" >&2; exit 1; }
done
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "build.sh: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
make --no-print-directory install DESTDIR="$stage" PREFIX=/usr API_DOCS="${API_DOCS:-1}"
rm -rf "$stage/usr/share/xdist" # the install manifest: dpkg keeps its own

# The plugin ABI this binary hosts, from the binary itself: "xdist 0.1.0 (plugin ABI 1.0)".
abi=$("$stage/usr/bin/xdist" --version | sed -n 's/.*(plugin ABI \([0-9]*\.[0-9]*\)).*/\1/p')
[ -n "$abi" ] || { echo "build.sh: xdist --version does not name the plugin ABI" >&2; exit 1; }
abi_major=${abi%%.*}

# Split the staged tree: the plugins go to their own package.
main=$work/xdist
plugins=$work/xdist-plugins
mv "$stage" "$main"
mkdir -p "$plugins/usr/lib/xdist"
mv "$main/usr/lib/xdist/plugins" "$plugins/usr/lib/xdist/"
rmdir "$main/usr/lib/xdist" "$main/usr/lib"

# Debian conventions: stripped binaries, compressed man page and changelog, a copyright file.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$main/usr/bin/xdist"
strip --strip-unneeded --remove-section=.comment "$plugins"/usr/lib/xdist/plugins/*.so
gzip -9n "$main/usr/share/man/man1/xdist.1"
mv "$main/usr/share/doc/xdist/CHANGELOG.md" "$main/usr/share/doc/xdist/changelog"
gzip -9n "$main/usr/share/doc/xdist/changelog"
copyright() {
    cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: xdist
Source: $homepage

Files: *
Copyright: the xdist developers
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
 DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
EOF
}
copyright >"$main/usr/share/doc/xdist/copyright"
pdoc=$plugins/usr/share/doc/xdist-plugins
mkdir -p "$pdoc"
copyright >"$pdoc/copyright"
for readme in plugins/*/README.md; do
    name=$(basename "$(dirname "$readme")")
    install -m 644 "$readme" "$pdoc/$name.md"
done

# Shared-library dependencies: dpkg-shlibdeps when dpkg-dev is there, else what Rust binaries
# always need.
shlibdeps() { # FILES...
    local deps=""
    if command -v dpkg-shlibdeps >/dev/null; then
        local d=$work/shlibs
        mkdir -p "$d/debian"
        printf 'Source: xdist\n\nPackage: xdist\nArchitecture: any\n' >"$d/debian/control"
        deps=$(cd "$d" && dpkg-shlibdeps -O "$@" 2>/dev/null | sed -n 's/^shlibs:Depends=//p') || deps=""
    fi
    echo "${deps:-libc6, libgcc-s1}"
}
main_deps=$(shlibdeps "$main/usr/bin/xdist")
plugin_deps=$(shlibdeps "$plugins"/usr/lib/xdist/plugins/*.so)

normalize() { # DIR: root-owned modes, md5sums
    local dir=$1
    find "$dir" -type d -exec chmod 755 {} +
    find "$dir" -type f -exec chmod 644 {} +
    if [ -d "$dir/usr/bin" ]; then chmod 755 "$dir"/usr/bin/*; fi
    mkdir -p "$dir/DEBIAN"
    (cd "$dir" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$dir/DEBIAN/md5sums"
}
size() { du -sk --apparent-size --exclude=DEBIAN "$1" | cut -f1; }

normalize "$main"
cat >"$main/DEBIAN/control" <<EOF
Package: xdist
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(size "$main")
Depends: $main_deps
Recommends: python3, python3-pytest
Suggests: xdist-plugins
Provides: xdist-plugin-abi-$abi_major (= $abi)
Section: devel
Priority: optional
Homepage: $homepage
Description: run a pytest suite across many CPUs
 xdist is a native replacement for pytest-xdist's \`pytest -n N\`: it starts pytest
 workers in your Python environment, schedules tests across them (load, each, loadscope,
 loadfile, loadgroup, worksteal), survives crashing and hanging workers and reports like
 pytest. Every argument it does not own is passed to pytest unchanged.
 .
 It hosts compiled plugins (plugin ABI $abi) from /usr/lib/xdist/plugins; the plugin API
 documentation is in /usr/share/doc/xdist.
EOF

normalize "$plugins"
cat >"$plugins/DEBIAN/control" <<EOF
Package: xdist-plugins
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(size "$plugins")
Depends: xdist (= $version), xdist-plugin-abi-$abi_major (>= $abi), $plugin_deps
Enhances: xdist
Section: devel
Priority: optional
Homepage: $homepage
Description: first-party plugins for xdist
 Compiled plugins, installed in /usr/lib/xdist/plugins (available, not enabled):
  - auto-workers: -n auto from available memory and the CPU quota;
  - crash-retry: reruns a test whose worker crashed (max-reruns, default 1);
  - node-lifecycle: per-worker timings as a table and JSON;
  - priority-scheduler: runs tests matching configured patterns first.
 Enable one by name with \`--plugin NAME\` (or XDIST_PLUGINS, [tool.xdist] plugins),
 configure it with \`--plugin-opt NAME.KEY=VALUE\`.
EOF

for pkg in xdist xdist-plugins; do
    dpkg-deb --root-owner-group -Zxz --build "$work/$pkg" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
    echo "$out/${pkg}_${version}_${arch}.deb"
done
