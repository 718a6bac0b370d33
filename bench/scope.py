"""What one run keeps between its cases, and releases when it ends.

The correctness gate's poison buffers and input snapshots and the copy probe's threads are worth
keeping from one case to the next, but not beyond the run: `runner.run_cases` opens a `RunScope`
and closes it at the end, Ctrl-C and errors included. Nothing here is process-wide.
"""

from __future__ import annotations

from . import check, roofline


class RunScope:
    """The caches of one run; a context manager that drops them on exit."""

    def __init__(self):
        self.scratch = check.Scratch()
        self.pools = roofline.CopyPools()

    def close(self) -> None:
        self.scratch.close()
        self.pools.close()

    def __enter__(self) -> RunScope:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
