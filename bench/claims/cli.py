"""`python -m bench claims`: its flags, and the run from experiments to the written report.

bench/cli/main.py adds the sub-command with `add_parser` and calls `main`; everything heavy is
imported only when the sub-command runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shlex
import sys
import time
from pathlib import Path
import dataclasses
import numpy as np
import kernels
from bench.measure import environment
from bench.claims import experiments, plots, report
from bench.claims.catalog import CLAIMS
from bench.claims.nets import pick_backend

# a run's output goes with the other generated results; the committed report (reports/claims.*,
# which the README quotes) is rewritten only when --committed asks: a plain `make claims` left the
# tree dirty and `make bench-pytest` labelled its runs "uncommitted changes"
DEFAULT_OUT = Path("reports/results/claims.json")
COMMITTED = Path("reports/claims.json")


def add_parser(sub) -> argparse.ArgumentParser:
    c = sub.add_parser("claims", help="nine experiments on ReLU vs sigmoid claims; verdicts by rule; report",
                       description="Run one experiment per claim about ReLU's advantages over sigmoid, judge each "
                       "by a rule written in code, print the verdict table, and write the JSON, a Markdown report "
                       "and its plots.")
    c.add_argument("--quick", action="store_true", help="the quick profile (at most 2 minutes on 2 cores); "
                   "default: the full one")
    c.add_argument("--seed", type=int, default=0, help="seed of every network, input and task (default 0)")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help=f"JSON path (default {DEFAULT_OUT}); the "
                       "Markdown report and the plots folder (<name>-plots) are written beside it")
    where.add_argument("--committed", action="store_true", help=f"write the committed report, {COMMITTED} "
                       "(+ .md, plots), that the README quotes")
    c.add_argument("--only", help="comma-separated claim numbers, e.g. 3,4 (claim 5 then uses ReLU's "
                   "sparsity of claim 4 only if 4 runs too)")
    c.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return c


def _only(spec: str | None, usage_error) -> list[int]:
    if not spec:
        return list(range(1, 10))
    try:
        ids = sorted({int(s) for s in spec.split(",") if s.strip()})
    except ValueError:
        raise usage_error(f"--only takes claim numbers 1-9, e.g. 3,4; got {spec!r}") from None
    bad = [i for i in ids if not 1 <= i <= 9]
    if bad or not ids:
        raise usage_error(f"--only takes claim numbers 1-9, got {spec!r}")
    return ids


def output_path(args) -> Path:
    """Where the JSON goes: --out, else the committed copy with --committed, else DEFAULT_OUT."""
    return args.out or (COMMITTED if args.committed else DEFAULT_OUT)


def main(args, console, argv=None, usage_error=ValueError) -> int:
    ids = _only(args.only, usage_error)
    out: Path = output_path(args)
    if out.exists() and out.is_dir():
        raise usage_error(f"--out {out} is a folder; give a file path ending in .json")
    for be in kernels.all_backends():        # a bad environment override: exit 2 now, not a failure later
        try:
            be.check_settings()
        except ValueError as exc:
            raise usage_error(f"{be.name}: {exc}") from None
    cfg = dataclasses.replace(experiments.PROFILES["quick" if args.quick else "full"], seed=args.seed)
    ctx = experiments.Context(backend=pick_backend())
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    gpus = [b.name for b in kernels.all_backends() if b.device == "gpu" and b.available and not b.simulated]
    load0 = os.getloadavg()
    max_load = load0[0]
    console.print(f"claims {','.join(map(str, ids))}, profile {cfg.name}, seed {cfg.seed}, networks on "
                  f"{ctx.backend}; load {load0[0]:.1f} on {os.cpu_count()} cores", highlight=False)
    t_start = time.perf_counter()
    entries = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # diverging training is measured, not warned
        for claim in (c for c in CLAIMS if c.id in ids):
            t0 = time.perf_counter()
            with console.status(f"claim {claim.id}: {claim.experiment}"):
                numbers = claim.run(cfg, ctx)
            ctx.done[claim.id] = numbers
            verdict = claim.rule(numbers)
            wall = time.perf_counter() - t0
            max_load = max(max_load, os.getloadavg()[0])
            console.print(f"  {claim.id}. {verdict.label()}  ({wall:.1f} s)", highlight=False, markup=False)
            entries.append({"id": claim.id, "slug": claim.slug, "claim": claim.claim, "experiment": claim.experiment,
                            "wall_s": wall, "verdict": verdict.as_dict(), "numbers": numbers})
    run = {
        "schema": report.SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": cfg.name, "seed": cfg.seed, "config": dataclasses.asdict(cfg),
        "seeds": "every generator is numpy.random.default_rng seeded from [seed, claim, ...] or seed + claim",
        "net_backend": ctx.backend, "gpu": ", ".join(gpus) or None,
        "wall_s": time.perf_counter() - t_start,
        "load": {"before": list(load0), "after": list(os.getloadavg()), "max_1min": max_load, "cores": os.cpu_count()},
        "env": environment.environment(command=command),
        "claims": entries,
    }
    plots_dir = out.with_name(out.stem + "-plots")
    images = {}
    if not args.no_plots:
        for c, e in zip((c for c in CLAIMS if c.id in ids), entries):
            images[c.id] = plots.save(c.plot(e["numbers"]), plots_dir / f"claim{c.id}-{c.slug}.png")
    for e in entries:
        if e["id"] in images:
            e["plot"] = str(images[e["id"]].relative_to(out.parent))
    report.save_json(run, out)
    md = out.with_suffix(".md")
    md.write_text(report.markdown(run, {i: str(p.relative_to(md.parent)) for i, p in images.items()}))
    console.print(report.table(run))
    for t in report.beside_tables(run):
        console.print(t)
    for p in [out, md, *images.values()]:
        console.print(f"wrote {p}", highlight=False)
    return 0
