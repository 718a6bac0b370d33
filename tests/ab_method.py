"""The experiments behind `bench ab`'s rule (docs/bench-ab.md; not part of `make test`).

    python -m tests.ab_method collect DIR --pairs 10 [--plant relu=2 sigmoid=1.3 ...] [--cases pr --run-args ""]
    python -m tests.ab_method analyse DIR [DIR ...] [--pairs 5,6,8]

`collect` clones this repository into DIR/repo, commits a head there that plants slowdowns (each
named op, on numpy and numba_cpu, `factor` times as slow: a busy wait of (factor - 1) x each call's
own duration after it, as tests/planted.py does, planted in kernels/__init__.py so that
kernels/numba_cpu's source stamp, the key of its store-strategy cache, stays the base's), or, with
no --plant, a head that changes only the README (A/A). It then runs the real `python -m bench ab
BASE --pairs N` there, the head being the clone's working tree as on a pull request, and keeps
every run's JSON in DIR/ab, with the load average before and after and the wall time in DIR/log.json.

`analyse` judges those runs again offline as `bench ab` would with fewer pairs: every window of n
consecutive pairs (disjoint windows, and all windows) is one virtual `bench ab`; the unplanted
cases are A/A (a "slower" there is a false positive), the planted ones measure detection per factor.
The pooled-sample rule of before (compare's rule on each side's samples joined) is judged on the
same windows for comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.analysis import compare, pairs
from bench.model import results
from kernels import machine

ROOT = Path(__file__).resolve().parent.parent
ELEMENTWISE = ("relu,relu_grad,sigmoid,sigmoid_grad,tanh,tanh_grad,leaky_relu,leaky_relu_grad,"
               "relu_mask,relu_grad_mask")
RUN_ARGS = f"--ops {ELEMENTWISE} --backends numpy,numba_cpu --device cpu"
PLANTED_BACKENDS = ("numpy", "numba_cpu")

PLANT = '''

# experiment only (tests/ab_method.py): these ops on numpy and numba_cpu made slower by a busy wait
# of (factor - 1) x each call's own duration
def _plant(op, be, factor):
    import time
    k = registry.kernel(op, be)
    raw = k.raw

    def kernel(*args, out=None, **kw):
        t0 = time.perf_counter()
        r = raw(*args, out=out, **kw)
        end = t0 + factor * (time.perf_counter() - t0)
        while time.perf_counter() < end:
            pass
        return r
    registry.register(op, be, supports_out=k.supports_out)(kernel)


for _op, _factor in {plant!r}.items():
    for _be in {backends!r}:
        _plant(_op, _be, _factor)
'''


def pool(runs: list, label: str):
    """One side's runs (results.Run) as one compare.Loaded: bench ab's rule before the pair rule,
    which this script compares it with. Each case's samples (and its probe's, round for round)
    joined in run order, from the runs in which its threads got their cores where there are such
    runs (a run marked starved times the wait for a core too); a case starved in every run stays
    starved, with the largest share its threads got. The copy peaks by their median."""
    loaded = [compare.from_run(r, label) for r in runs]
    samples: dict = {}
    probes: dict = {}
    status: dict = {}
    beside: dict = {}
    clean = {k for one in loaded for k in one.samples if k not in one.starved}
    starved = {k for one in loaded for k in one.samples} - clean
    for one in loaded:
        for k, s in one.samples.items():
            if k in clean and k in one.starved:
                continue
            samples.setdefault(k, []).append(s)
            if k in one.probe_samples:
                probes.setdefault(k, []).append(one.probe_samples[k])
            if k in one.case_peaks:
                beside.setdefault(k, []).append(one.case_peaks[k])
        for k, s in one.status.items():
            status[k] = s if status.get(k, "ok") == "ok" else status[k]
    # a case keeps probe samples only where every run of it had them, so they pair sample by sample
    paired = {k: np.concatenate(v) for k, v in probes.items() if len(v) == len(samples.get(k, ()))}
    cpu_got = {k: max(one.cpu_got[k] for one in loaded if k in one.cpu_got)
               for k in starved if any(k in one.cpu_got for one in loaded)}
    peaks = {}
    for dev in {d for one in loaded for d in one.peaks}:
        peaks[dev] = float(np.median([one.peaks[dev] for one in loaded if dev in one.peaks]))
    return compare.Loaded(label, loaded[0].env, peaks, {k: np.concatenate(v) for k, v in samples.items()}, status,
                          loaded[0].created, {k: float(np.median(v)) for k, v in beside.items()}, paired,
                          frozenset(starved), cpu_got)


def _git(repo: Path, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def parse_plant(items: list[str]) -> dict[str, float]:
    plant = {}
    for item in items:
        op, _, factor = item.partition("=")
        plant[op] = float(factor)
    return plant


def collect(folder: Path, pairs: int, plant: dict[str, float], seed: int | None, run_args: str,
            cases: str = "quick") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    repo = folder / "repo"
    if repo.exists():
        shutil.rmtree(repo)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    _git(repo, "config", "user.email", "ab@example.com")
    _git(repo, "config", "user.name", "ab_method")
    base = _git(repo, "rev-parse", "HEAD")
    if plant:
        with (repo / "kernels" / "__init__.py").open("a") as f:
            f.write(PLANT.format(plant=plant, backends=PLANTED_BACKENDS))
    else:
        with (repo / "README.md").open("a") as f:
            f.write("\nA change that moves nothing.\n")
    _git(repo, "commit", "-qam", f"head: planted {plant or 'nothing'}")
    out = folder / "ab"
    cmd = [sys.executable, "-m", "bench", "ab", base, "--cases", cases, "--run-args", run_args,
           "--pairs", str(pairs), "--out", str(out), *(["--seed", str(seed)] if seed is not None else [])]
    load_before, t0 = os.getloadavg(), time.time()
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    log = {"cmd": cmd, "plant": plant, "planted_backends": PLANTED_BACKENDS, "pairs": pairs, "base": base,
           "rc": done.returncode, "wall_s": round(time.time() - t0, 1), "loadavg_before": load_before,
           "loadavg_after": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "cpu": machine.cpu_model(), "output_tail": (done.stdout + done.stderr)[-3000:]}
    (folder / "log.json").write_text(json.dumps(log, indent=1))
    print(json.dumps({k: v for k, v in log.items() if k != "output_tail"}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.ab_method")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("folder", type=Path)
    c.add_argument("--pairs", type=int, default=10)
    c.add_argument("--plant", nargs="*", default=[], help="op=factor ...")
    c.add_argument("--seed", type=int)
    c.add_argument("--run-args", default=RUN_ARGS, help="more `bench run` flags (default: the quick profile's "
                   "elementwise cases on numpy and numba_cpu); '' with --cases pr: bench ab's own pr set")
    c.add_argument("--cases", default="quick", help="bench ab's --cases")
    a = sub.add_parser("analyse")
    a.add_argument("folders", type=Path, nargs="+")
    a.add_argument("--pairs", default="5,6,8")
    args = p.parse_args(argv)
    if args.cmd == "collect":
        collect(args.folder, args.pairs, parse_plant(args.plant), args.seed, args.run_args, args.cases)
    else:
        print(json.dumps(analyse(args.folders, [int(n) for n in args.pairs.split(",")]), indent=1))
    return 0


def _sides(folder: Path):
    """The runs of one `bench ab`, in its order, as (base, head) pairs of results.Run."""
    files = sorted((folder / "ab").glob("[0-9][0-9]-*.json"))
    base = [results.load(f) for f in files if f.stem.endswith("-base")]
    head = [results.load(f) for f in files if f.stem.endswith("-head")]
    return list(zip(base, head))


def _windows(count: int, n: int, overlapping: bool) -> list[range]:
    step = 1 if overlapping else n
    return [range(i, i + n) for i in range(0, count - n + 1, step)]


def analyse(folders: list[Path], sizes: list[int], alphas=(0.01, 0.05), threshold: float = 0.10) -> dict:
    """Per window size n: A/A false positives (unplanted cases called slower; faster counted too) and
    detection per planted factor, under the per-pair rule (at each alpha) and the pooled rule of before,
    over disjoint windows of n pairs and over every window (overlapping, so not independent)."""
    out: dict = {}
    experiments = []
    for folder in folders:
        log = json.loads((folder / "log.json").read_text())
        experiments.append((folder, log, _sides(folder)))
    info = {str(f): {"pairs": len(p), "plant": log["plant"], "wall_s": log["wall_s"], "date": log["date"],
                     "cpu": log["cpu"], "loadavg_before": log["loadavg_before"], "loadavg_after": log["loadavg_after"]}
            for f, log, p in experiments}
    for folder, _log, prs in experiments:
        info[str(folder)].update(machine_load([run for pair in prs for run in pair]))
    out["experiments"] = info
    ix = {name: i for i, name in enumerate(compare.KEY_FIELDS)}

    def planted_factor(log, key):
        if key[ix["backend"]] in log.get("planted_backends", ()) and key[ix["op"]] in log["plant"]:
            return log["plant"][key[ix["op"]]]
        return None

    for n in sizes:
        for overlapping in (False, True):
            label = f"{n} pairs, {'every window' if overlapping else 'disjoint windows'}"
            res: dict = {}
            for _folder, log, prs in experiments:
                loaded = [(compare.from_run(b, "base"), compare.from_run(h, "head")) for b, h in prs]
                for w in _windows(len(prs), n, overlapping):
                    rules = {f"pairs alpha {a:g}": pairs.compare_pairs([loaded[i] for i in w], threshold=threshold,
                                                                       alpha=a).rows for a in alphas}
                    old = compare.compare_runs(pool([prs[i][0] for i in w], "base"),
                                               pool([prs[i][1] for i in w], "head"), threshold=threshold)
                    rules["pooled (before)"] = old.rows
                    for rule, rows in rules.items():
                        r = res.setdefault(rule, {"aa": Counter(), "aa_slower_cases": Counter(), "planted": {}, "by_size": {}})
                        for row in rows:
                            f = planted_factor(log, row.key)
                            v = row.change.verdict
                            if f is None:
                                r["aa"][v] += 1
                                r["aa"]["cases"] += 1
                                if v == compare.SLOWER:
                                    r["aa_slower_cases"][compare.case_label(row.key)] += 1
                            else:
                                d = r["planted"].setdefault(f"{f:g}", Counter())
                                d[v] += 1
                                d["cases"] += 1
                                if getattr(row.change, "waited", False):
                                    d["slower but for the wait rule"] += 1
                                where = f"{f:g}x {row.key[ix['backend']]} 2^{int(math.log2(row.key[ix['size']]))}"
                                e = r["by_size"].setdefault(where, [0, 0, []])
                                e[0] += v == compare.SLOWER
                                e[1] += 1
                                e[2].append(row.change.ratio)
            out[label] = {rule: {"aa_false_positives": f"{r['aa'][compare.SLOWER]}/{r['aa']['cases']}",
                                 "aa_verdicts": dict(r["aa"]), "aa_slower_cases": dict(r["aa_slower_cases"]),
                                 "detected": {f: f"{d[compare.SLOWER]}/{d['cases']}" for f, d in sorted(r["planted"].items())},
                                 "planted_verdicts": {f: dict(d) for f, d in sorted(r["planted"].items())},
                                 "detected_by_backend_size": {w: f"{e[0]}/{e[1]} (median change {np.median(e[2]):.2f}x)"
                                                              for w, e in sorted(r["by_size"].items())}}
                          for rule, r in res.items()}
    out["spread"] = spread(experiments, planted_factor)
    return out


def machine_load(runs) -> dict:
    """The 1-minute load average over the runs (as `bench run` recorded it during each), and the
    median share of the CPU that other processes used meanwhile."""
    la, others = [], []
    for run in runs:
        for point in ((run.env or {}).get("load") or {}).get("during") or []:
            if point.get("loadavg"):
                la.append(point["loadavg"][0])
            if isinstance(point.get("others"), (int, float)):
                others.append(point["others"])
    if not la:
        return {}
    return {"loadavg_1min_during": [round(min(la), 2), round(float(np.median(la)), 2), round(max(la), 2)],
            "others_cpu_share_median": round(float(np.median(others)), 2) if others else None}


def spread(experiments, planted_factor) -> dict:
    """Between-pair spread of the unplanted cases: the standard deviation of the log per-pair ratio,
    median and 90th percentile over cases, by backend and size; and within-run spread for scale."""
    by: dict = {}
    for _folder, log, prs in experiments:
        loaded = [(compare.from_run(b, "base"), compare.from_run(h, "head")) for b, h in prs]
        per_case: dict = {}
        for b, h in loaded:
            for k, r in pairs.pair_ratios(b, h).items():
                if planted_factor(log, k) is None:
                    per_case.setdefault(k, []).append(math.log(r.ratio))
        for k, xs in per_case.items():
            if len(xs) >= 3:
                d = dict(zip(compare.KEY_FIELDS, k))
                by.setdefault(f"{d['backend']} 2^{int(math.log2(d['size']))}", []).append(float(np.std(xs, ddof=1)))
    return {g: {"cases": len(v), "median_sd_log_ratio": round(float(np.median(v)), 3),
                "p90": round(float(np.percentile(v, 90)), 3)} for g, v in sorted(by.items())}


if __name__ == "__main__":
    sys.exit(main())
