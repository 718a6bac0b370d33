"""The results schema, environment capture, and atomic save / load of a run.

A run is one JSON document (a plain dict in memory):

    {
      "schema": "actbench.results/1",
      "created": "2026-11-28T12:00:00+00:00",
      "interrupted": false,                 # true when Ctrl-C ended the run early
      "env": {                              # bench/environment.py: where and how it ran
        "host", "platform", "python", "command", "profile", "seed",
        "cpu": {"model", "cores", "llc_bytes"},
        "numpy": {"version", "blas": [threadpoolctl's info dicts]},
        "numba": {"version", "threads", "threading_layer"},
        "gpu": null | {"name", "memory_bytes", "driver", "cuda_runtime", "compute_capability", "l2_bytes"},
        "packages": {name: version},
        "git": {"commit", "dirty"}
      },
      "peaks": {                            # per device, measured in the same run: the fastest
        "cpu": {"gbps", "method", "bytes", "median_s", "samples_s": [...],   # of several probes
                "measured": [{"method", "gbps", "median_s", "samples_s", "probe"}, ...]},
        "gpu": {...}
      },
      "results": [                          # one entry per case
        {"op", "backend", "device", "dtype", "size",            # size: elements of x
         "shape", "batch", "sparsity",                         # matmul cases only (else null)
         "status": "ok" | "failed" | "skipped", "reason",
         "median_s", "iqr_s", "min_s", "n", "samples_s": [...], "stable", "timer",
         "bytes", "flops", "gbps", "pct_peak", "speedup_vs_numpy", "check_worst"}
      ]
    }

Fields that a failed or skipped case cannot have are null. Saving writes a temporary file in the
same folder and renames it over the target, so a crash or Ctrl-C never leaves half a file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import tempfile
from pathlib import Path

import numpy as np

SCHEMA = "actbench.results/1"

RESULT_FIELDS = ("op", "backend", "device", "dtype", "size", "shape", "batch", "sparsity",
                 "status", "reason", "median_s", "iqr_s",
                 "min_s", "n", "samples_s", "stable", "timer", "bytes", "flops", "gbps", "pct_peak",
                 "speedup_vs_numpy", "check_worst")


class ResultsError(ValueError):
    """A results file that cannot be read as actbench results."""


def new_run(env: dict) -> dict:
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "interrupted": False, "env": env, "peaks": {}, "results": []}


def result_entry(**fields) -> dict:
    """A case entry with every schema field present (None where not given)."""
    unknown = set(fields) - set(RESULT_FIELDS)
    if unknown:
        raise KeyError(f"not result fields: {sorted(unknown)}")
    return {k: fields.get(k) for k in RESULT_FIELDS}


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save(run: dict, path: str | Path) -> Path:
    """Write run as JSON to path atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(run, f, indent=1, default=_jsonable, allow_nan=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path) -> dict:
    """Read a results file; ResultsError (one line) when it is missing or not actbench results."""
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(run, dict) or run.get("schema") != SCHEMA:
        raise ResultsError(f"{path}: not an actbench results file (expected schema {SCHEMA!r})")
    return run


def default_path(folder: str | Path = "reports/results") -> Path:
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    return Path(folder) / f"{stamp}-{socket.gethostname()}.json"
