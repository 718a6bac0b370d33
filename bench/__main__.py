"""`python -m bench`: the command line (bench/cli/main.py) with its exit codes."""

import sys

from bench.cli.main import PROG, entry

if __name__ == "__main__":
    sys.exit(entry(prog=PROG))
