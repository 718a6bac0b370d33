"""`make bench-pytest-compare`'s first step: is there a saved pytest-benchmark run to compare with?

    python -m bench.analysis.pytest_saved [STORAGE]      # default .benchmarks; exit 0 when the latest is usable

pytest-benchmark compares against the latest run saved for this machine (`--benchmark-autosave`
writes .benchmarks/<machine id>/NNNN_*.json) and, when there is none or it is corrupt, fails with a
traceback after measuring every benchmark for a minute. This says it in one line, before that.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path

STORAGE = Path(".benchmarks")


def machine_id() -> str:
    """The folder pytest-benchmark saves this machine's runs in (its own get_machine_id's format)."""
    return "{}-{}-{}-{}".format(platform.system(), platform.python_implementation(),
                                ".".join(platform.python_version_tuple()[:2]), platform.architecture()[0])


def latest(storage: Path = STORAGE) -> Path | None:
    """The run pytest-benchmark's --benchmark-compare picks: the last NNNN_*.json by name."""
    files = [*(storage / machine_id()).glob("[0-9][0-9][0-9][0-9]_*.json"),
             *storage.glob("[0-9][0-9][0-9][0-9]_*.json")]
    return max(files, key=lambda f: (f.name, str(f.parent)), default=None)


def problem(path: Path) -> str | None:
    """Why a saved run cannot be compared with, or None."""
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:          # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"not readable JSON ({exc})"
    benches = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benches, list) or not benches:
        return "no 'benchmarks' list in it"
    for b in benches:
        if not isinstance(b, dict) or not isinstance(b.get("fullname"), str):
            return "a benchmark without a 'fullname'"
        median = (b.get("stats") or {}).get("median") if isinstance(b.get("stats"), dict) else None
        if not isinstance(median, (int, float)) or isinstance(median, bool) or not math.isfinite(median):
            return f"{b['fullname']}: no numeric stats.median"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    storage = Path(argv[0]) if argv else STORAGE
    path = latest(storage)
    if path is None:
        print(f"error: no saved pytest-benchmark run in {storage}/{machine_id()} to compare with: "
              "run `make bench-pytest` first", file=sys.stderr)
        return 2
    why = problem(path)
    if why:
        print(f"error: the latest saved run {path} cannot be compared with ({why}): delete it, "
              "or run `make bench-pytest` to save a new one", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
