"""xdist-rs: the `xdist` binary (a Rust replacement for `pytest -n N`) as a Python package.

The wheel installs the binary as its script (`<env>/bin/xdist`), the first-party plugins in
`<env>/lib/xdist-plugins` (loaded only when named: `--plugin PATH`), this
package (`python -m xdist_rs`, `find_xdist_bin()`) and a pytest plugin that hands
`pytest -n N` runs to the binary once a project opts in (see `xdist_rs.pytest_plugin`).

The import name is `xdist_rs` on purpose: `xdist` is pytest-xdist's package.
"""

import os
import sys
import sysconfig

__all__ = ["find_xdist_bin", "XdistNotFound"]


class XdistNotFound(FileNotFoundError):
    """The `xdist` binary is not where pip puts it; the message lists where it looked."""


def _scripts_dirs():
    """Where pip may have put the wheel's script: this environment's scripts directory, the
    user scheme's (`pip install --user`), `<target>/bin` (`pip install --target <target>`)
    and `<prefix>/bin` (`pip install --prefix`), derived from where this package lies."""
    dirs = [sysconfig.get_path("scripts")]
    if sys.version_info >= (3, 10):
        user_scheme = sysconfig.get_preferred_scheme("user")
    elif os.name == "nt":
        user_scheme = "nt_user"
    elif sys.platform == "darwin" and getattr(sys, "_framework", None):
        user_scheme = "osx_framework_user"
    else:
        user_scheme = "posix_user"
    dirs.append(sysconfig.get_path("scripts", scheme=user_scheme))
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # --target: <target>/xdist_rs and <target>/bin.
    dirs.append(os.path.join(package_parent, "bin"))
    # --prefix / another environment: <prefix>/lib/pythonX.Y/site-packages/xdist_rs.
    parts = package_parent.split(os.sep)
    if len(parts) >= 3 and parts[-1] in ("site-packages", "dist-packages"):
        dirs.append(os.path.join(os.sep.join(parts[:-3]) or os.sep, "bin"))
    seen = []
    for d in dirs:
        if d and d not in seen:
            seen.append(d)
    return seen


def find_xdist_bin():
    """The path of the installed `xdist` binary; `XdistNotFound` when it is nowhere pip puts it."""
    exe = "xdist" + (sysconfig.get_config_var("EXE") or "")
    tried = []
    for d in _scripts_dirs():
        path = os.path.join(d, exe)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        tried.append(path)
    raise XdistNotFound(
        "xdist-rs: the xdist binary is not installed next to this Python package (looked for "
        + ", ".join(tried)
        + "); reinstall it with `python -m pip install --force-reinstall xdist-rs`"
    )
