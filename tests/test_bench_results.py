"""bench/model/results.py: typed records, the JSON schema (2, and 1 read), atomic save / load, the
derived figures and the grouping, on the recorded run in reports/example/ (conftest's example_run)."""

from __future__ import annotations

import json
import os
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

from bench.measure import environment
from kernels.ops import OPS

from bench.model import results
from bench.run import runner
from bench.model.results import CaseResult, Run, Status
from tests.conftest import EXAMPLE_RUN


def _case(run: Run, op: str, backend: str, size: int) -> CaseResult:
    (e,) = [e for e in run.results if (e.op, e.backend, e.size) == (op, backend, size)]
    return e


def test_the_example_loads_as_typed_records(example_run):
    assert json.loads(EXAMPLE_RUN.read_text())["schema"] == results.SCHEMA_1
    assert len(example_run.results) == 90 and example_run.env["host"] == "vm"
    e = example_run.results[0]
    assert isinstance(e, CaseResult) and e.status is Status.OK and isinstance(e.samples_s, tuple)
    assert (e.op, e.backend, e.size, e.n) == ("relu", "numpy", 4096, 67)
    with pytest.raises(FrozenInstanceError):
        e.median_s = 1.0


def test_round_trip_writes_schema_4_and_reads_schema_2(example_run, tmp_path):
    p = results.save(example_run, tmp_path / "sub" / "r.json")
    doc = json.loads(p.read_text())
    assert doc["schema"] == results.SCHEMA == "actbench.results/4"
    old = dict(json.loads(EXAMPLE_RUN.read_text()), schema="actbench.results/2")    # one peak per device
    for e in old["results"]:
        for k in ("shape", "batch", "sparsity"):
            e.pop(k, None)
    (tmp_path / "two.json").write_text(json.dumps(old))
    assert results.load(tmp_path / "two.json") == example_run
    assert {e["peak_level"] for e in doc["results"]} == {None}     # read as recorded: no level named
    assert "shape" not in doc["results"][0] and doc["results"][0]["status"] == "ok"
    assert results.load(p) == example_run
    old = json.loads(EXAMPLE_RUN.read_text())
    for new_e, old_e in zip(doc["results"], old["results"]):
        assert new_e == dict({k: v for k, v in old_e.items() if k not in ("shape", "batch", "sparsity")},
                             peak_level=None, kind="elementwise")


def test_schema_3_matmul_fields_load_as_the_kinds_axes_and_figures(tmp_path):
    """Schema 3 kept a sparse matmul case's axes and figures as fields of every case (null for an
    elementwise one): they load into `axes` and `figures`, the case's kind named."""
    mm = {"op": "sparse_matmul", "backend": "scipy_csr", "device": "cpu", "dtype": "float32", "size": 64,
          "status": "ok", "median_s": 2e-3, "shape": "8x8", "batch": 64, "sparsity": 0.9, "pattern": "relu",
          "speedup_vs_dense": 3.0, "pct_of_ideal": 30.0, "conversion_s": 1e-4}
    ew = {"op": "relu", "backend": "numpy", "device": "cpu", "dtype": "float32", "size": 64, "status": "ok",
          "median_s": 1e-3, "shape": None, "batch": None, "sparsity": None, "pattern": None,
          "speedup_vs_dense": None, "pct_of_ideal": None, "conversion_s": None}
    (tmp_path / "three.json").write_text(json.dumps({"schema": "actbench.results/3", "env": {}, "results": [mm, ew]}))
    m, e = results.load(tmp_path / "three.json").results
    assert m.kind == "matmul" and m.axes == {"shape": "8x8", "batch": 64, "sparsity": 0.9, "pattern": "relu"}
    assert m.figures == {"speedup_vs_dense": 3.0, "pct_of_ideal": 30.0, "conversion_s": 1e-4}
    assert m.axis("batch") == 64 and m.figure("pct_of_ideal") == 30.0 and m.figure("absent") is None
    assert e.kind == "elementwise" and e.axes is None and e.figures is None and e.axis("shape") is None
    again = results.load(results.save(results.Run(env={}, results=(m, e)), tmp_path / "four.json"))
    assert again.results == (m, e)


def test_schema_1_with_a_matmul_field_is_refused(tmp_path):
    doc = json.loads(EXAMPLE_RUN.read_text())
    doc["results"][3]["batch"] = 8
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(results.ResultsError, match="case 3: a 'batch' value"):
        results.load(tmp_path / "r.json")


def test_unknown_case_fields_are_refused():
    doc = {"schema": results.SCHEMA, "results": [{"op": "relu", "speed": 3}]}
    with pytest.raises(results.ResultsError, match="unknown fields \\['speed'\\]"):
        Run.from_json(doc)


def test_records_hold_plain_values():
    e = CaseResult(op="relu", backend="numpy", device="cpu", dtype="float32", size=np.int64(8), status="ok",
                   median_s=np.float64(1e-3), n=np.int64(10), samples_s=[np.float32(1.0)] * 2)
    assert e.status is Status.OK and str(e.status) == "ok"
    assert type(e.median_s) is float and type(e.n) is int and type(e.size) is int and e.samples_s == (1.0, 1.0)
    with pytest.raises(ValueError):
        replace(e, status="done")


def test_derive_reproduces_the_recorded_figures(example_run):
    """A schema 2 run has the memory peak only: derived again, every % is of it, as recorded."""
    again = results.derive(example_run)
    assert again == replace(example_run, results=tuple(replace(e, peak_level="memory", marks=a.marks) if e.timed else e
                                                       for e, a in zip(example_run.results, again.results)))
    # the only marks derived for it: speed-ups over a NumPy case that did not stabilise
    unsteady = {(e.op, e.dtype, e.size) for e in example_run.results if e.backend == "numpy" and e.stable is False}
    for e in again.results:
        if e.backend != "numpy" and e.timed:
            assert (e.marks == (results.MARKED_BASELINE,)) == ((e.op, e.dtype, e.size) in unsteady)


def test_derive_speedup_bandwidth_and_peak(example_run):
    raw = replace(example_run, results=tuple(replace(e, gbps=None, pct_peak=None, speedup_vs_numpy=None)
                                             for e in example_run.results))
    failed = replace(_case(raw, "relu", "torch", 4096), status=Status.FAILED, reason="mask: byte 0")
    raw = replace(raw, results=tuple(failed if e.backend == "torch" and e.size == 4096 and e.op == "relu" else e
                                     for e in raw.results))
    run = results.derive(raw)
    numpy_e, numba_e = _case(run, "relu", "numpy", 4096), _case(run, "relu", "numba_cpu", 4096)
    assert numba_e.speedup_vs_numpy == pytest.approx(numpy_e.median_s / numba_e.median_s)
    assert numpy_e.speedup_vs_numpy == 1.0
    assert numba_e.gbps == pytest.approx(8 * 4096 / numba_e.median_s / 1e9)
    assert numba_e.pct_peak == pytest.approx(100 * numba_e.gbps / run.peaks["cpu"]["gbps"])
    f = _case(run, "relu", "torch", 4096)
    assert f.gbps is None and f.speedup_vs_numpy is None
    no_peak = results.derive(replace(raw, peaks={}))
    assert _case(no_peak, "relu", "numpy", 4096).pct_peak is None


def test_ratio_of_medians(example_run):
    first = _case(example_run, "relu", "numpy", 4096)
    later = replace(first, median_s=first.median_s / 2)
    assert results.ratio(later, first) == pytest.approx(0.5)
    assert results.ratio(later, None) is None
    assert results.ratio(replace(later, status=Status.FAILED), first) is None


def test_grouping(example_run):
    assert results.op_order(["sparse_matmul", "sigmoid", "relu_grad", "relu"], known=OPS) == \
        ["relu", "relu_grad", "sigmoid", "sparse_matmul"]
    assert results.op_order(["mine", "sigmoid", "theirs", "relu"], known=OPS) == ["relu", "sigmoid", "mine", "theirs"]
    assert results.op_order(["sigmoid", "relu", "sigmoid"]) == ["sigmoid", "relu"]     # as they appear
    groups = results.by_op(example_run)
    assert list(groups)[:3] == ["relu", "relu_grad", "sigmoid"] and len(groups) == 10
    relu = groups["relu"]
    reordered = [e for e in relu if e.backend == "torch"] + [e for e in relu if e.backend != "torch"]
    assert results.backend_order(reordered) == ["numpy", "torch", "numba_cpu"]
    table = results.rows(reversed(relu))
    assert list(table) == [("float32", 4096), ("float32", 2**18), ("float32", 2**25)]
    best = {size: results.best_backend(cells) for (_, size), cells in table.items()}
    for (_, size), cells in table.items():
        assert cells[best[size]].median_s == min(e.median_s for e in cells.values())
    assert best == {4096: "numba_cpu", 2**18: "torch", 2**25: "numba_cpu"}   # as the report shows


def test_run_grows_by_new_records(example_run):
    empty = Run(env={"host": "x"})
    one = empty.adding(example_run.results[0])
    assert empty.results == () and one.results == (example_run.results[0],)
    assert one.created and not one.interrupted


def test_atomic_write_leaves_old_file_on_failure(example_run, tmp_path):
    p = tmp_path / "r.json"
    results.save(example_run, p)
    before = p.read_text()
    bad = replace(example_run, env={"host": object()})      # not serialisable: the write fails midway
    with pytest.raises(TypeError):
        results.save(bad, p)
    assert p.read_text() == before
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]     # no temp file left behind


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(results.ResultsError, match="no such file"):
        results.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(results.ResultsError, match="not valid JSON"):
        results.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"schema": "something else"}')
    with pytest.raises(results.ResultsError, match="not an actbench results file"):
        results.load(tmp_path / "other.json")


def test_environment_has_what_the_schema_promises():
    env = environment.environment("cmd", profile="quick")
    for key in ("host", "platform", "python", "command", "cpu", "numpy", "numba", "gpu", "packages", "git"):
        assert key in env
    assert env["command"] == "cmd" and env["profile"] == "quick"
    assert env["cpu"]["cores"] == os.cpu_count()
    assert env["cpu"]["llc_bytes"] > 0
    assert env["numpy"]["version"] == np.__version__
    assert isinstance(env["numpy"]["blas"], list)
    assert set(env["git"]) == {"commit", "dirty"}


def test_peak_is_the_fastest_probe_and_every_probe_is_kept():
    def probe(gbps):
        return {"gbps": gbps, "method": f"copy {gbps}", "bytes": 1, "median_s": 1 / gbps, "samples_s": [],
                "measured": [{"method": "a", "gbps": gbps, "median_s": 1 / gbps}]}
    peak = runner._combine_peaks(probe(20.0), probe(31.0))
    peak = runner._combine_peaks(peak, probe(25.0))
    assert peak["gbps"] == 31.0 and peak["method"] == "copy 31.0"
    assert [m["probe"] for m in peak["measured"]] == [0, 1, 2]
    assert [m["gbps"] for m in peak["measured"]] == [20.0, 31.0, 25.0]


CPU_PEAKS = {"gbps": 40.0, "method": "fake memory copy",
             "cache": {"gbps": 400.0, "method": "fake cache copy", "applies_below_bytes": 2**20}}


@pytest.mark.parametrize("peak,working_set,expected", [
    (CPU_PEAKS, 2**20 - 1, ("cache", 400.0)),         # fits: judged against the cache peak
    (CPU_PEAKS, 2**20, ("memory", 40.0)),             # at the measured boundary: the memory peak
    ({"gbps": 40.0}, 64, ("memory", 40.0)),           # no cache peak (GPU, schema 2): memory
    ({}, 64, (None, None)),
    (None, 64, (None, None)),
])
def test_peak_for_picks_the_level_the_bytes_fit_in(peak, working_set, expected):
    assert results.peak_for(peak, working_set) == expected


def test_derive_judges_each_case_against_its_level(example_run):
    run = results.derive(replace(example_run, peaks={"cpu": CPU_PEAKS}))
    small, large = _case(run, "relu", "numba_cpu", 4096), _case(run, "relu", "numba_cpu", 2**25)
    assert small.bytes < 2**20 <= large.bytes
    assert small.peak_level == "cache" and small.pct_peak == pytest.approx(100 * small.gbps / 400.0)
    assert large.peak_level == "memory" and large.pct_peak == pytest.approx(100 * large.gbps / 40.0)


def test_the_level_is_chosen_by_the_bytes_moved_not_the_element_count():
    # relu float32 on 2^17 elements moves 2^20 bytes: past a 2^19-byte boundary, though its element
    # count is below it
    e = results.CaseResult("relu", "numba_cpu", "cpu", "float32", 2**17, "ok", median_s=1e-4, bytes=2**20)
    peaks = {"cpu": dict(CPU_PEAKS, cache=dict(CPU_PEAKS["cache"], applies_below_bytes=2**19))}
    (d,) = results.derive(results.Run(env={}, results=[e], peaks=peaks)).results
    assert d.peak_level == "memory" and d.pct_peak == pytest.approx(100 * (2**20 / 1e-4 / 1e9) / 40.0)


def test_ratio_is_none_where_either_median_is_zero_or_missing():
    from bench.model.results import CaseResult, ratio
    first = CaseResult("relu", "numpy", "cpu", "float32", 4096, "ok", median_s=2e-3)
    assert ratio(CaseResult("relu", "numpy", "cpu", "float32", 4096, "ok", median_s=3e-3), first) == 1.5
    zero = CaseResult("relu", "numpy", "cpu", "float32", 4096, "ok", median_s=0.0)
    assert ratio(zero, first) is None and ratio(first, zero) is None


def test_derive_drops_an_above_peak_mark_the_figures_no_longer_give():
    # a record derived before (marked above its peak) derived again with a peak it is well within
    e = results.CaseResult("relu", "numba_cpu", "cpu", "float32", 2**25, "ok", median_s=1e-2, bytes=2**28,
                           marks=(results.ABOVE_PEAK,))
    (d,) = results.derive(results.Run(env={}, results=[e], peaks={"cpu": CPU_PEAKS})).results
    assert d.pct_peak == pytest.approx(100 * (2**28 / 1e-2 / 1e9) / 40.0) and d.marks is None


def test_combined_peaks_keep_the_fastest_single_sample_of_every_probe():
    # the best median came from the second probe, the fastest single sample from the first
    first = {"gbps": 20.0, "method": "a", "fastest_gbps": 45.0, "measured": [{"method": "a", "gbps": 20.0}]}
    again = {"gbps": 31.0, "method": "b", "fastest_gbps": 33.0, "measured": [{"method": "b", "gbps": 31.0}]}
    peak = runner._combine_peaks(first, again)
    assert (peak["gbps"], peak["fastest_gbps"]) == (31.0, 45.0)
    assert runner._combine_peaks(again, first)["fastest_gbps"] == 45.0


def test_above_peak_is_beyond_the_peaks_own_spread():
    # the memory peak, 40 GB/s, from samples with a 20 % relative IQR: a case at 110 % is within its
    # spread (not marked), one at 130 % is beyond it
    peaks = {"cpu": dict(CPU_PEAKS, samples_s=[0.8, 0.9, 1.0, 1.1, 1.2])}

    def at(pct):
        e = results.CaseResult("relu", "numba_cpu", "cpu", "float32", 2**25, "ok", bytes=2**28,
                               median_s=2**28 / (pct / 100 * 40.0) / 1e9)
        (d,) = results.derive(results.Run(env={}, results=[e], peaks=peaks)).results
        assert d.peak_level == "memory" and d.pct_peak == pytest.approx(pct)
        return d.marks
    assert at(110) is None and at(130) == (results.ABOVE_PEAK,)


def test_combined_peaks_take_the_new_probes_fastest_sample_where_the_first_had_none():
    first = {"gbps": 20.0, "method": "a", "measured": [{"method": "a", "gbps": 20.0}]}
    again = {"gbps": 31.0, "method": "b", "fastest_gbps": 33.0, "measured": [{"method": "b", "gbps": 31.0}]}
    assert runner._combine_peaks(first, again)["fastest_gbps"] == 33.0
