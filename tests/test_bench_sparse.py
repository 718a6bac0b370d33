"""The sparse_matmul benchmark (bench/kinds/matmul.py): activation patterns at a target sparsity, the
rotation of weight copies and activation pools beyond the last-level cache, the case axes and
their command-line flags, the derived figures (speed-up over the best dense, % of ideal,
crossover), the tables, plot and JSON fields, and one tiny run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.model import cases as model_cases
from bench.run import plan
from bench import kinds
from bench.cli import main as cli
from bench.model import results
from bench.kinds import matmul as sparse
from bench.model.results import CaseResult, Run, Status

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("pattern", sparse.PATTERNS)
@pytest.mark.parametrize("target", [0.0, 0.25, 0.5, 0.9, 0.99])
def test_patterns_hit_the_target_sparsity(pattern, target, rng):
    a = sparse.activations(64, 4096, target, pattern, "float32", rng)
    assert a.shape == (64, 4096) and a.dtype == np.float32 and (a >= 0).all()
    assert abs(np.mean(a == 0) - target) < 0.02
    if pattern == "correlated":                  # the same units off in every row
        assert ((a == 0).all(axis=0) == (a == 0).any(axis=0)).all()


def test_relu_pattern_shares_zeros_across_the_batch_more_than_iid(rng):
    """Units with a low bias are off in most rows: fewer rows of w are needed than with iid zeros."""
    relu = sparse.activations(64, 4096, 0.9, "relu", "float32", rng)
    iid = sparse.activations(64, 4096, 0.9, "iid", "float32", rng)
    assert sparse.needed_rows(relu) < sparse.needed_rows(iid)
    assert sparse.needed_rows(relu[:1]) == np.count_nonzero(relu[0])


def test_rotation_reads_beyond_the_cache_before_any_repeat():
    """What the timed calls read between two uses of the same (activations, weights) pair exceeds
    twice the last-level cache, counted from the real pool's needed rows, on a case whose pool is
    sized by that rule (strictly inside [POOL_MIN, POOL_MAX], so no bound decides it)."""
    inputs = sparse.Inputs(seed=0)
    inputs.llc = llc = 2**20                       # w (2 MiB) beyond it; one sample reads ~10 % of w
    shape = (2048, 256)
    ws = inputs.weights("float32", shape)
    pool = inputs.pool("float32", shape, 1, 0.9, "relu")
    assert sparse.POOL_MIN < len(pool) < sparse.POOL_MAX
    assert len(ws) >= 2 and len(ws) * ws[0].nbytes > 2 * llc
    read = {id(a): sparse.needed_rows(a) * shape[1] * 4 for a in pool}   # bytes of w each sample reads
    assert sum(read.values()) > 2 * llc                    # one pass over the pool (one copy of w)
    rot = sparse.Rotation(pool, ws)
    seen = [rot.next() for _ in range(2 * rot.period)]
    keys = [(id(a), id(w)) for a, w in seen]
    assert len(set(keys)) == len(pool) * len(ws)           # every pair, every copy and matrix, is used
    for t in range(rot.period, 2 * rot.period):
        last = max(i for i in range(t) if keys[i] == keys[t])
        between = sum(read[id(a)] for a, _ in seen[last + 1:t])
        assert between > 2 * llc, (t, last, between)


def test_rotation_takes_other_arrays_each_sample(rng):
    """The timed call really gets the next pair: a kernel that records what it was given sees
    every activation matrix and every weight copy, and never the same pair twice in a row."""
    inputs = sparse.Inputs(seed=0)
    inputs.llc = 2**20                              # a small cache, so small arrays rotate
    ws = inputs.weights("float32", (256, 128))
    pool = inputs.pool("float32", (256, 128), 1, 0.5, "relu")
    assert len(ws) >= 2 and len(pool) >= sparse.POOL_MIN
    assert all(np.array_equal(w, ws[0]) and w is not ws[0] for w in ws[1:])
    assert not np.array_equal(pool[0], pool[1])
    rot = sparse.Rotation(pool, ws)
    got = [rot.next() for _ in range(rot.period + 1)]
    ids = [(id(a), id(w)) for a, w in got]
    assert all(x != y for x, y in zip(ids, ids[1:]))
    assert ids[rot.period] == ids[0] and len(set(ids[:rot.period])) == rot.period


@pytest.mark.parametrize("flag, value, message", [
    ("--shapes", "8192by8192", "malformed shape"),
    ("--shapes", "0x5", "at least 1"),
    ("--batch", "1,x", "malformed --batch"),
    ("--batch", "0", "at least 1"),
    ("--sparsity", "0.5,1", "in [0, 1)"),
    ("--sparsity", "half", "malformed --sparsity"),
    ("--pattern", "gaussian", "unknown --pattern gaussian; valid: relu, iid, correlated"),
])
def test_bad_flags_exit_2_with_one_line(flag, value, message):
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--ops", "sparse_matmul", flag, value],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_cases_and_profiles():
    _, quick, _ = plan.build("quick", ops="sparse_matmul", backends="numpy,numba_cpu")
    assert {c.axes for c in quick} == {sparse.case_axes((8192, 8192), b, s, "relu") for b in (1, 64) for s in (0.0, 0.5, 0.9)}
    assert all(c.size == 8192 * 8192 and c.dtype == "float32" for c in quick)
    _, full, _ = plan.build("full", ops="sparse_matmul", backends="numpy")
    assert len(full) == 3 * 3 * 7
    _, some, _ = plan.build("quick", ops="sparse_matmul", backends="scipy_csr", shapes="8192x8192,4096x11008",
                             batch="1,64", sparsity="0.5,0.9", pattern="relu,iid")
    assert len(some) == 2 * 2 * 2 * 2
    assert {c.axis("shape") for c in some} == {"8192x8192", "4096x11008"}
    order = [c.backend for c in plan.build("quick", ops="sparse_matmul", backends="numba_cpu,numpy")[1]]
    assert order[:3] == ["numpy"] * 3              # one backend's sparsities in a row, numpy first


def _entry(backend, s, median, batch=1, conversion_s=None):
    return CaseResult(op="sparse_matmul", kind="matmul", backend=backend, device="cpu", dtype="float32", size=64,
                      status=Status.OK, median_s=median, bytes=1000,
                      axes=dict(sparse.case_axes((8, 8), batch, s, "relu")),
                      figures={"conversion_s": conversion_s} if conversion_s else None)


def test_speedup_ideal_and_crossover():
    run = Run(env={}, peaks={"cpu": {"gbps": 10.0}}, results=(
        _entry("numpy", 0.0, 1.0), _entry("torch", 0.0, 0.8), _entry("numba_cpu", 0.0, 1.0),
        _entry("numpy", 0.5, 1.0), _entry("torch", 0.5, 2.0), _entry("numba_cpu", 0.5, 0.5),
        _entry("numpy", 0.9, 1.0), _entry("numba_cpu", 0.9, 0.125), _entry("scipy_csr", 0.9, 2.0),
        _entry("numba_cpu", 0.5, 0.1, batch=8),
    ))
    run = kinds.derive(run)
    got = {(e.backend, e.axis("sparsity"), e.axis("batch")): e for e in run.results}
    assert got[("numba_cpu", 0.0, 1)].figure("speedup_vs_dense") == pytest.approx(0.8)     # torch: the best dense
    assert got[("numba_cpu", 0.5, 1)].figure("speedup_vs_dense") == pytest.approx(2.0)
    assert got[("numba_cpu", 0.5, 1)].figure("pct_of_ideal") == pytest.approx(100.0)
    assert got[("numba_cpu", 0.9, 1)].figure("pct_of_ideal") == pytest.approx(80.0)
    assert got[("numba_cpu", 0.5, 8)].figure("speedup_vs_dense") is None                  # no dense in that case
    assert got[("numpy", 0.5, 1)].speedup_vs_numpy == pytest.approx(1.0)
    cross = sparse.crossovers(run.results)
    assert cross[("cpu", "float32", "8x8", 1, "relu")] == {"numba_cpu": 0.5, "scipy_csr": None}


def test_a_tie_with_the_best_dense_is_no_crossover():
    """numba_cpu may run BLAS itself at batch > 1: a 1.04x there is a tie, not a crossover; the
    crossover is the lowest s at least CROSSOVER_SPEEDUP times as fast."""
    run = results.Run(env={}, results=(
        _entry("numpy", 0.0, 1.0), _entry("numba_cpu", 0.0, 1.0 / 1.04),
        _entry("numpy", 0.5, 1.0), _entry("numba_cpu", 0.5, 1.0 / 1.09),
        _entry("numpy", 0.7, 1.0), _entry("numba_cpu", 0.7, 1.0 / 1.1),
        _entry("numpy", 0.9, 1.0), _entry("numba_cpu", 0.9, 0.2)))
    cross = sparse.crossovers(kinds.derive(run).results)
    assert cross[("cpu", "float32", "8x8", 1, "relu")] == {"numba_cpu": 0.7}


def test_the_physical_limit_leads_and_ideal_only_beside_a_strong_reference():
    """batch < 8: % of the copy peak of the needed weights' bandwidth; batch >= 8: the useful FLOP rate
    as % of the best dense BLAS's in the same run; % of ideal shown only where the dense reference
    at s = 0 streams at 90 % of the copy peak."""
    from bench.kinds import matmul

    def e(backend, s, median, batch, nbytes, flops):
        return CaseResult(op="sparse_matmul", kind="matmul", backend=backend, device="cpu", dtype="float32",
                          size=64 * 64, status=Status.OK, median_s=median, bytes=nbytes, flops=flops,
                          axes=dict(sparse.case_axes((64, 64), batch, s, "relu")))
    full = 2 * 8 * 64 * 64                              # a dense product's flops at batch 8
    run = kinds.derive(Run(env={}, peaks={"cpu": {"gbps": 10.0}}, results=(
        e("numpy", 0.0, 1.0, 1, 9.5e9, 2 * 64 * 64), e("numba_cpu", 0.0, 0.8, 1, 4e9, 64 * 64),
        e("numpy", 0.0, 1.0, 8, 1e9, full), e("numba_cpu", 0.5, 1.0, 8, 1e9, full // 2))))
    got = {(x.backend, x.axis("batch")): x for x in run.results}
    assert got[("numba_cpu", 1)].figure("pct_of_limit") == pytest.approx(50.0)     # 5 GB/s of 10
    assert got[("numba_cpu", 8)].figure("pct_of_limit") == pytest.approx(50.0)     # half the dense FLOP rate
    assert got[("numpy", 8)].figure("pct_of_limit") == pytest.approx(100.0)
    b1 = [x for x in run.results if x.axis("batch") == 1]
    assert matmul.ideal_meaningful(b1) and not matmul.ideal_meaningful([x for x in run.results if x.axis("batch") == 8])
    wide = {t.title.split(":")[0]: t for t in matmul.tables(run)}
    from rich.console import Console
    console = Console(width=200, record=True)
    for t in wide.values():
        console.print(t)
    text = " ".join(console.export_text().split())
    assert "x1.25 · 125% ideal" in text and "50% of copy peak" in text and "50% of dense FLOP/s" in text
    assert text.count("% ideal") == 2          # the batch 1 table's two cells; none at batch 8


def test_tables_plot_markdown_and_json(tmp_path):
    run = kinds.derive(Run(env={}, peaks={"cpu": {"gbps": 10.0}}, results=(
        _entry("numpy", 0.0, 1.0), _entry("numba_cpu", 0.0, 1.1),
        _entry("numpy", 0.9, 1.0), _entry("numba_cpu", 0.9, 0.12), _entry("scipy_csr", 0.9, 0.2, conversion_s=0.05),
    )))
    from rich.console import Console
    console = Console(width=200, record=True)
    for t in sparse.tables(run):
        console.print(t)
    text = " ".join(console.export_text().split())
    assert "x8.33" in text and "CSR conversion 25%" in text
    assert "% ideal" not in text       # the dense reference streams far below the copy peak: no ideal
    assert "crossover sparsity (lowest s at least 1.1x as fast as the best dense): numba_cpu 0.9, scipy_csr 0.9" in text
    md = sparse.markdown(run)
    assert "## sparse_matmul" in md and "| 0.9 |" in md and "as fast as the best dense): numba_cpu 0.9" in md
    paths = sparse.write_plots(run, tmp_path)
    assert len(paths) == 1 and paths[0].stat().st_size > 1000
    path = results.save(run, tmp_path / "r.json")
    doc = json.loads(path.read_text())
    e = next(c for c in doc["results"] if c["backend"] == "scipy_csr")
    assert e["kind"] == "matmul" and list(e["axes"]) == ["shape", "batch", "sparsity", "pattern"]
    assert set(e["figures"]) == {"speedup_vs_dense", "pct_of_ideal", "conversion_s", "pct_of_limit"}
    assert results.load(path) == run


def test_a_tiny_run_end_to_end(tmp_path):
    """A run of the op on the CPU backends: checked, timed, derived, saved with its fields."""
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--ops", "sparse_matmul", "--backends",
                           "numpy,numba_cpu,scipy_csr", "--shapes", "256x384", "--batch", "1,3",
                           "--sparsity", "0,0.9", "--budget", "0.01", "--no-plots", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert len(doc["results"]) == 3 * 2 * 2
    assert all(e["status"] == "ok" for e in doc["results"]), [e["reason"] for e in doc["results"]]
    numba = [e for e in doc["results"] if e["backend"] == "numba_cpu"]
    assert all(e["figures"]["speedup_vs_dense"] and e["figures"]["pct_of_ideal"] for e in numba)
    assert all(e["figures"]["conversion_s"] for e in doc["results"] if e["backend"] == "scipy_csr")
    assert "crossover sparsity" in proc.stdout
    # interleaved (the default): the multi-threaded backends' samples are paired with a copy probe's,
    # one per round; scipy's one-thread CSR product is not (bench compare compares it raw)
    # and their % of the copy peak is of that probe, a copy of w's size beside them (cold weights:
    # the memory level, whatever the case's bytes), not of the run's peak
    for e in doc["results"]:
        paired = e.get("probe_samples_s")
        assert e["peak_level"] == "memory" and e["pct_peak"] == pytest.approx(100 * e["gbps"] / e["peak_gbps"])
        if e["backend"] == "scipy_csr":
            assert paired is None            # its copy measured after it, not paired round by round
        else:
            assert paired and len(paired) == e["n"], e["backend"]
            beside = 2 * 256 * 384 * 4 / float(np.median(paired)) / 1e9
            assert e["peak_gbps"] == pytest.approx(beside)


def test_without_interleaving_a_case_is_judged_by_a_copy_measured_after_it(tmp_path):
    """--no-interleave: no samples paired, but each CPU case's % of the copy peak is still of a copy
    of w's size measured right after it (the memory level: cold weights), not of the run's peaks by
    the case's bytes, which put a high-sparsity case under the cache peak."""
    out = tmp_path / "r.json"
    assert cli.main(["run", "--ops", "sparse_matmul", "--backends", "numpy,numba_cpu", "--shapes", "256x384",
                     "--batch", "1", "--sparsity", "0.9", "--budget", "0.01", "--no-plots", "--no-interleave",
                     "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["results"]) == 2
    for e in doc["results"]:
        assert e.get("probe_samples_s") is None and e["peak_gbps"] > 0 and e["peak_level"] == "memory"
        assert e["pct_peak"] == pytest.approx(100 * e["gbps"] / e["peak_gbps"])


def test_a_case_that_fails_its_gate_is_failed_with_its_traffic_and_never_timed(monkeypatch):
    """The gate shared with the elementwise cases (bench/measure/case.py): its small checks once per
    (op, backend, dtype), a FAILED result that still carries the case's bytes, no timing."""
    from bench.measure import check, interleave, timing
    from bench.measure.case import Context
    from bench.measure.scope import RunScope
    calls = []
    monkeypatch.setattr(sparse, "small_check", lambda *a: calls.append(a) or check.CheckResult(False, "planted"))
    monkeypatch.setattr(timing, "time_cpu", lambda *a, **k: pytest.fail("a failed case was timed"))
    inputs = sparse.Inputs(0)
    with RunScope() as scope:
        ctx = Context(timing.Sampling(), 0, scope, interleave.CopyProbe())
        for batch in (1, 2):
            case = model_cases.Case("sparse_matmul", "numpy", "cpu", "float32", 64 * 32,
                                    sparse.case_axes((64, 32), batch, 0.5, "iid"))
            r = sparse._run_case(case, inputs, ctx)
            assert r.status == Status.FAILED and r.reason == "planted" and r.bytes > 0
    assert len(calls) == 1


def test_a_sparse_cell_carries_its_marks():
    """A starved or unstable sparse case is marked before its time (~ ?), one above its limit after
    the % (!), in the wide and the narrow tables and the Markdown, as an elementwise cell is."""
    from dataclasses import replace

    from rich.console import Console

    from bench.model.results import ABOVE_PEAK, STARVED
    run = kinds.derive(Run(env={}, peaks={"cpu": {"gbps": 10.0}}, results=(
        _entry("numpy", 0.0, 1.0), _entry("numba_cpu", 0.0, 0.5))))
    marked = tuple(replace(e, stable=False, marks=(STARVED, ABOVE_PEAK)) if e.backend == "numba_cpu" else e
                   for e in run.results)
    run = replace(run, results=marked)
    for narrow in (False, True):
        console = Console(width=200, record=True)
        for t in sparse.tables(run, narrow=narrow):
            console.print(t)
        text = console.export_text()
        assert "~?500 ms" in text and "% !" in text.replace("% of copy peak !", "% !")
        assert "1.00 s" in text and "~1.00 s" not in text and "?1.00 s" not in text    # numpy's: unmarked
    assert "~?500 ms" in sparse.markdown(run)
