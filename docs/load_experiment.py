"""Issue 17's load experiment: how many speed-up cells of a run moved from a quiet run's, and how
many of those the run marked (bench/model/results.py's marks: starved, above its peak, unstable, or
over a marked NumPy case).

    python docs/load_experiment.py QUIET.json LOADED.json [LOADED.json ...] [--move 0.2]

One row per loaded run: its load (bench/measure/load.py's record), the speed-up cells both runs timed, how
many moved by more than --move (relative) with no mark in either run, how many moved and were
marked, and how many cells it marked in all. The goal is no cell in the first count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.model import results  # noqa: E402


def cells(run: results.Run) -> dict:
    return {(e.op, e.backend, e.dtype, e.size, e.axes_key): e
            for e in run.results if e.timed and e.speedup_vs_numpy and e.backend != "numpy"}


def moved(quiet: results.Run, other: results.Run, move: float) -> dict:
    q, o = cells(quiet), cells(other)
    both = [k for k in q if k in o]
    counts = {"cells": len(both), "moved_unmarked": 0, "moved_marked": 0, "marked": 0}
    for k in both:
        marked = results.speedup_marked(o[k]) or results.speedup_marked(q[k])
        counts["marked"] += bool(results.speedup_marked(o[k]))
        if abs(o[k].speedup_vs_numpy / q[k].speedup_vs_numpy - 1) > move:
            counts["moved_marked" if marked else "moved_unmarked"] += 1
    return counts


def load_text(run: results.Run) -> str:
    ld = run.env.get("load") or {}
    before = ((ld.get("before") or {}).get("loadavg") or ["?"])[0]
    after = ((ld.get("after") or {}).get("loadavg") or ["?"])[0]
    mean = ld.get("others_mean")
    return f"{before} -> {after}" + (f", others {100 * mean:.0f} %" if mean is not None else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("quiet", type=Path)
    p.add_argument("loaded", type=Path, nargs="+")
    p.add_argument("--move", type=float, default=0.2)
    a = p.parse_args(argv)
    quiet = results.load(a.quiet)
    print(f"| run | 1-min load before -> after, others' CPU | cells | moved > {a.move:.0%} unmarked | "
          "moved, marked | marked in all |")
    print("|---|---|---:|---:|---:|---:|")
    marked_q = sum(results.speedup_marked(e) for e in cells(quiet).values())
    print(f"| {a.quiet.name} (reference) | {load_text(quiet)} | {len(cells(quiet))} | - | - | {marked_q} |")
    for f in a.loaded:
        run = results.load(f)
        c = moved(quiet, run, a.move)
        print(f"| {f.name} | {load_text(run)} | {c['cells']} | {c['moved_unmarked']} | {c['moved_marked']} | "
              f"{c['marked']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
