"""The experiments that test `bench compare` itself on this machine (not part of `make test`).

    python -m tests.compare_method collect DIR [--runs 24] [--interleave]   # a sequence of runs
    python -m tests.compare_method analyse DIR [DIR ...]                    # rates per rule

`collect` makes a sequence of runs of the same code on a reduced case set, cycling the planted
backend (tests/planted.py) through the factors 1.0, 1.1, 1.0, 1.3, 1.0, 2.0; every third run has
an extra busy process beside it (background load, on top of whatever else the machine runs).
`analyse` then counts:
- A/A: every pair of consecutive runs, on the cases of the real backends (same code both times),
  and pairs of consecutive factor-1.0 runs on the planted cases: any "slower" is a false positive;
- planted: each factor-f run against the factor-1.0 runs before and after it, planted cases only:
  the detection rate at 1.1x, 1.3x and 2x;
for raw times and for times x the run's copy peak, so the default of `--normalise` is measured.
It also gives the run-to-run spread of the speed-ups over NumPy (for judging --interleave).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FACTORS = (1.0, 1.1, 1.0, 1.3, 1.0, 2.0)
OPS = "relu,sigmoid"
BACKENDS = "numpy,numba_cpu,planted"


def _busy():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _run_logged(log: Path, code: str, factor: float, loaded: bool, row: dict) -> None:
    """Run `code` in a fresh interpreter with the planted backend `factor` times slower (and a busy
    process beside it when `loaded`); append its row, with the load and wall time, to `log`."""
    busy = _busy() if loaded else None
    load_before = os.getloadavg()[0]
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                           env={**os.environ, "ACTBENCH_PLANTED_FACTOR": str(factor)})
    finally:
        if busy:
            busy.kill()
            busy.wait()
    row = {**row, "factor": factor, "busy_process": loaded, "loadavg_before": load_before,
           "loadavg_after": os.getloadavg()[0], "wall_s": round(time.time() - t0, 1), "rc": p.returncode}
    with log.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def collect(folder: Path, runs: int, extra: list[str], alternate: bool = False) -> None:
    """`alternate`: every other run interleaved (the same factor twice in a row, once each way),
    so both ways meet the same load."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "runs.jsonl"
    for i in range(runs):
        factor = FACTORS[(i // 2 if alternate else i) % len(FACTORS)]
        inter = alternate and i % 2 == 1
        extra_i = [*extra, "--interleave" if inter else "--no-interleave"] if alternate else extra
        loaded = (i // 2 if alternate else i) % 3 == 2
        out = folder / f"run{i:03d}-f{factor:g}{'-il' if inter else ''}.json"
        code = ("import sys, tests.planted; from bench.cli.main import main; "
                f"sys.exit(main(['run', '--ops', {OPS!r}, '--backends', {BACKENDS!r}, '--out', {str(out)!r}, "
                f"'--no-plots', *{extra_i!r}]))")
        _run_logged(log, code, factor, loaded,
                    {"i": i, "file": out.name, "interleave": inter or "--interleave" in extra})


def gate(folder: Path, checks: int, extra: list[str]) -> None:
    """The gate as CI runs it on its main branch (bench.analysis.history check --update-baseline: compare,
    confirm what is slower, then the run becomes the baseline case by case, but for the cases called
    slower or noisy); only the factor-1.0 checks update the baseline, as only unchanged code would
    land. Verdicts before and after confirming are kept in check<i>.json."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "checks.jsonl"
    baselines = folder / "baselines"
    for i in range(-1, checks):
        factor = 1.0 if i < 0 else FACTORS[i % len(FACTORS)]
        out = folder / f"check{i:03d}-f{factor:g}.run.json"
        argv = ["check", f"--run-args=--ops {OPS} --backends {BACKENDS} {' '.join(extra)}", "--baselines", str(baselines),
                "--history", str(folder / "history.jsonl"), "--plots", str(folder / "plots"),
                "--markdown", str(folder / f"check{i:03d}.md"), "--report-json", str(folder / f"check{i:03d}.json"),
                "--out", str(out), *(["--update-baseline"] if factor == 1.0 else [])]
        code = f"import sys, tests.planted; from bench.analysis.history import main; sys.exit(main({argv!r}))"
        loaded = i >= 0 and i % 3 == 2
        _run_logged(log, code, factor, loaded, {"i": i, "report": f"check{i:03d}.json"})


def analyse_gate(folder: Path) -> dict:
    rows = [json.loads(line) for line in (folder / "checks.jsonl").read_text().splitlines()]
    res = {}
    for stage in ("before_confirm", "final"):
        fp = n_aa = 0
        det: dict[str, list[int]] = {}
        for r in rows:
            path = folder / r["report"]
            if r["i"] < 0 or not path.exists():
                continue
            rep = json.loads(path.read_text())[stage]
            for row in rep["rows"]:
                planted = row["backend"] == "planted"
                if planted and r["factor"] != 1.0:
                    d = det.setdefault(f"{r['factor']:g}", [0, 0])
                    d[0] += row["verdict"] == "slower"
                    d[1] += 1
                else:
                    fp += row["verdict"] == "slower"
                    n_aa += 1
        res[stage] = {"aa_false_positives": fp, "aa_cases": n_aa, "aa_rate": fp / max(n_aa, 1),
                      "detected": {f: f"{a}/{b} = {a / max(b, 1):.2f}" for f, (a, b) in sorted(det.items())}}
    res["checks"] = len([r for r in rows if r["i"] >= 0])
    res["loadavg"] = [round(r["loadavg_before"], 1) for r in rows]
    return res


def _runs(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()
            if json.loads(line)["rc"] == 0]


def _only(loaded, backends: set[str], keep: bool):
    from bench.analysis.compare import KEY_FIELDS
    ix = KEY_FIELDS.index("backend")
    pick = {k: v for k, v in loaded.samples.items() if (k[ix] in backends) == keep}
    return dataclasses.replace(loaded, samples=pick, status={k: "ok" for k in pick},
                               case_peaks={k: v for k, v in loaded.case_peaks.items() if k in pick},
                               probe_samples={k: v for k, v in loaded.probe_samples.items() if k in pick})


def analyse(folders: list[Path], thresholds=(0.10, 0.15, 0.20), alpha=0.01) -> dict:
    from bench.analysis import compare
    out = {}
    parts = []
    for folder in folders:
        every = _runs(folder)
        for mode in sorted({bool(r.get("interleave")) for r in every}):
            parts.append((folder, f"{folder} {'interleaved' if mode else 'sequential'}",
                          [r for r in every if bool(r.get("interleave")) == mode]))
    for folder, label, runs in parts:
        loaded = {r["file"]: compare.load(folder / r["file"]) for r in runs}
        planted = {"planted"}
        aa_pairs = list(itertools.pairwise(runs))
        ones = [r for r in runs if r["factor"] == 1.0]
        res = {"runs": len(runs), "loadavg": [r["loadavg_before"] for r in runs]}
        for normalise in compare.NORMALISE:
            for t in thresholds:
                fp = n_aa = 0
                noisy = 0
                # A/A: consecutive runs without the planted backend, and factor-1.0 runs with it only
                for pairs, keep in ((aa_pairs, False), (list(itertools.pairwise(ones)), True)):
                    for a, b in pairs:
                        rep = compare.compare_runs(_only(loaded[a["file"]], planted, keep),
                                                   _only(loaded[b["file"]], planted, keep),
                                                   threshold=t, alpha=alpha, normalise=normalise, force=True)
                        fp += len(rep.slower)
                        noisy += rep.counts()["noisy"]
                        n_aa += len(rep.rows)
                det = {}
                for i, r in enumerate(runs):
                    if r["factor"] == 1.0:
                        continue
                    for j in (i - 1, i + 1):
                        if 0 <= j < len(runs) and runs[j]["factor"] == 1.0:
                            rep = compare.compare_runs(_only(loaded[runs[j]["file"]], planted, True),
                                                       _only(loaded[r["file"]], planted, True),
                                                       threshold=t, alpha=alpha, normalise=normalise, force=True)
                            d = det.setdefault(f"{r['factor']:g}", [0, 0, []])
                            d[0] += len(rep.slower)
                            d[1] += len(rep.rows)
                            d[2] += [row.change.ratio for row in rep.rows]
                res[f"{normalise} {100 * t:g}%"] = {
                    "aa_false_positives": fp, "aa_cases": n_aa, "aa_rate": fp / max(n_aa, 1),
                    "aa_noisy": noisy,
                    "detected": {f: f"{d[0]}/{d[1]} = {d[0] / max(d[1], 1):.2f} (median ratio {np.median(d[2]):.2f})"
                                 for f, d in sorted(det.items())}}
        res["speedup_spread"] = speedup_spread(folder, runs)
        out[label] = res
    return out


def speedup_spread(folder: Path, runs: list[dict]) -> dict:
    """Run-to-run spread of each case's speed-up over NumPy (real backends): the median over cases
    of the relative IQR of that speed-up across runs, and its median absolute log change between
    consecutive runs."""
    per_case: dict[tuple, list[float]] = {}
    for r in runs:
        run = json.loads((folder / r["file"]).read_text())
        for e in run["results"]:
            if e["status"] == "ok" and e["backend"] not in ("numpy", "planted") and e.get("speedup_vs_numpy"):
                per_case.setdefault((e["op"], e["backend"], e["dtype"], e["size"]), []).append(e["speedup_vs_numpy"])
    rel_iqr, steps = [], []
    by_size: dict[int, list[float]] = {}
    for k, v in per_case.items():
        v = np.asarray(v)
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        rel_iqr.append((q3 - q1) / med)
        steps += list(np.abs(np.diff(np.log(v))))
        by_size.setdefault(k[3], []).append((q3 - q1) / med)
    return {"cases": len(per_case), "median_rel_iqr_across_runs": float(np.median(rel_iqr)),
            "median_abs_log_step": float(np.median(steps)), "p90_abs_log_step": float(np.percentile(steps, 90)),
            "rel_iqr_by_size": {n: [round(x, 3) for x in v] for n, v in sorted(by_size.items())}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.compare_method")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("folder", type=Path)
    c.add_argument("--runs", type=int, default=24)
    c.add_argument("--interleave", action="store_true")
    c.add_argument("--alternate", action="store_true", help="every other run with --interleave")
    g = sub.add_parser("gate")
    g.add_argument("folder", type=Path)
    g.add_argument("--checks", type=int, default=18)
    g.add_argument("--interleave", action="store_true")
    ag = sub.add_parser("analyse-gate")
    ag.add_argument("folder", type=Path)
    a = sub.add_parser("analyse")
    a.add_argument("folders", type=Path, nargs="+")
    args = p.parse_args(argv)
    if args.cmd == "collect":
        collect(args.folder, args.runs, ["--interleave" if args.interleave else "--no-interleave"], args.alternate)
    elif args.cmd == "gate":
        gate(args.folder, args.checks, ["--interleave"] if args.interleave else [])
    elif args.cmd == "analyse-gate":
        print(json.dumps(analyse_gate(args.folder), indent=1))
    else:
        print(json.dumps(analyse(args.folders), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
