"""SIGTERM handled as Ctrl-C for the commands that measure (`bench run`, `bench ab`): a CI job's
timeout or a `kill` then ends them the way Ctrl-C does, with what was measured saved and marked
interrupted and their child processes and temporary worktrees cleaned up, instead of the process
dying mid-write."""

from __future__ import annotations

import signal
from contextlib import contextmanager


@contextmanager
def sigterm_as_ctrl_c():
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread; restored after."""
    def stop(signum, frame):
        raise KeyboardInterrupt
    try:
        before = signal.signal(signal.SIGTERM, stop)
    except ValueError:             # not the main thread: leave signals to whoever owns them
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
