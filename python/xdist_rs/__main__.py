"""`python -m xdist_rs ARGS`: runs the installed `xdist` binary with ARGS, as ruff's and uv's
`python -m` entries do."""

import os
import sys

from xdist_rs import XdistNotFound, find_xdist_bin


def main():
    try:
        xdist = os.fsdecode(find_xdist_bin())
    except XdistNotFound as exc:
        print(exc, file=sys.stderr)
        return 4
    if sys.platform == "win32":
        import subprocess

        return subprocess.run([xdist, *sys.argv[1:]]).returncode
    os.execv(xdist, [xdist, *sys.argv[1:]])
    return 4  # not reached


if __name__ == "__main__":
    sys.exit(main())
