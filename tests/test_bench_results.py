"""Results JSON: round trip, atomic write, environment capture, and the derived figures."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bench import environment, results, runner


def _run():
    run = results.new_run(environment.environment("python -m bench run --profile quick", profile="quick", seed=0))
    run["peaks"] = {"cpu": {"gbps": 20.0, "method": "fake", "bytes": 1, "median_s": 1.0, "samples_s": [1.0],
                            "measured": []}}
    for backend, med in (("numpy", 4e-3), ("numba_cpu", 1e-3)):
        run["results"].append(results.result_entry(
            op="relu", backend=backend, device="cpu", dtype="float32", size=2**20, status="ok", reason="",
            median_s=med, iqr_s=1e-5, min_s=med * 0.9, n=10, samples_s=[med] * 10, stable=True,
            timer="perf_counter_ns", bytes=8 * 2**20, flops=2**20, check_worst=0.1))
    run["results"].append(results.result_entry(op="relu", backend="torch", device="cpu", dtype="float32",
                                               size=2**20, status="failed", reason="mask: byte 0"))
    return run


def test_round_trip(tmp_path):
    run = _run()
    runner.derive(run)
    p = results.save(run, tmp_path / "sub" / "r.json")
    back = results.load(p)
    assert back == json.loads(json.dumps(run))
    assert back["schema"] == results.SCHEMA
    assert back["results"][2]["median_s"] is None


def test_numpy_scalars_serialise(tmp_path):
    run = _run()
    run["results"][0]["median_s"] = np.float64(1e-3)
    run["results"][0]["n"] = np.int64(10)
    back = results.load(results.save(run, tmp_path / "r.json"))
    assert back["results"][0]["median_s"] == 1e-3 and back["results"][0]["n"] == 10


def test_derive_speedup_bandwidth_and_peak():
    run = _run()
    runner.derive(run)
    numpy_e, numba_e, failed = run["results"]
    assert numba_e["speedup_vs_numpy"] == pytest.approx(4.0)
    assert numpy_e["speedup_vs_numpy"] == pytest.approx(1.0)
    assert numba_e["gbps"] == pytest.approx(8 * 2**20 / 1e-3 / 1e9)
    assert numba_e["pct_peak"] == pytest.approx(100 * numba_e["gbps"] / 20.0)
    assert failed["gbps"] is None and failed["speedup_vs_numpy"] is None


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    results.save(_run(), p)
    before = p.read_text()
    bad = _run()
    bad["results"][0]["median_s"] = object()          # not serialisable: the write fails midway
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
    env = environment.environment("cmd")
    for key in ("host", "platform", "python", "command", "cpu", "numpy", "numba", "gpu", "packages", "git"):
        assert key in env
    assert env["cpu"]["cores"] == os.cpu_count()
    assert env["cpu"]["llc_bytes"] > 0
    assert env["numpy"]["version"] == np.__version__
    assert isinstance(env["numpy"]["blas"], list)
    assert set(env["git"]) == {"commit", "dirty"}


def test_result_entry_rejects_unknown_fields():
    with pytest.raises(KeyError):
        results.result_entry(op="relu", speed=3)


def test_peak_is_the_fastest_probe_and_every_probe_is_kept():
    def probe(gbps):
        return {"gbps": gbps, "method": f"copy {gbps}", "bytes": 1, "median_s": 1 / gbps, "samples_s": [],
                "measured": [{"method": "a", "gbps": gbps, "median_s": 1 / gbps}]}
    peak = runner._combine_peaks(probe(20.0), probe(31.0))
    peak = runner._combine_peaks(peak, probe(25.0))
    assert peak["gbps"] == 31.0 and peak["method"] == "copy 31.0"
    assert [m["probe"] for m in peak["measured"]] == [0, 1, 2]
    assert [m["gbps"] for m in peak["measured"]] == [20.0, 31.0, 25.0]
