"""The command line (python -m bench): one-line errors with exit code 2, list, run end to end on
tiny sizes, Ctrl-C saving what was measured, exit 1 on a failed case, and report."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from bench.kinds import elementwise
from bench.model import cases as model_cases
from bench.cli import main as cli
from bench.model import results
from bench.model.results import Status
from kernels import registry
from tests.fakes import interrupt_on_call, patch_peaks


@pytest.fixture(autouse=True)
def no_peak_probe(monkeypatch):
    """The real probes copy 2 GiB and sweep the caches; the CLI tests only need numbers."""
    patch_peaks(monkeypatch)


@pytest.mark.parametrize("argv,expected", [
    (["run", "--ops", "mish"], "unknown op mish; valid: relu, relu_grad"),
    (["run", "--backends", "jax"], "unknown backend jax; valid: numpy"),
    (["run", "--dtypes", "int8"], "unknown dtype int8; valid: float16, float32, float64"),
    (["run", "--profile", "huge"], "unknown profile 'huge'; valid: quick, full"),
    (["run", "--sizes", "2**x"], "malformed size '2**x'"),
    (["run", "--sizes", "0"], "malformed size '0'"),
    (["run", "--device", "tpu"], "unknown device 'tpu'; valid: cpu, gpu, all"),
    (["run", "--seed", "abc"], "invalid int value"),
    (["frobnicate"], "invalid choice"),
    (["report", "/no/such/file.json"], "no such file"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, expected, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_errors_from_a_real_process_have_no_traceback():
    p = subprocess.run([sys.executable, "-m", "bench", "run", "--ops", "nope"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: unknown op nope") and "Traceback" not in p.stderr


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--profile", "--ops", "--backends", "--dtypes", "--sizes", "--device", "--out", "--seed"):
        assert flag in out


def test_parse_size():
    assert model_cases.parse_size("2**20") == model_cases.parse_size("2^20") == 2**20
    assert model_cases.parse_size("16M") == 16 * 2**20 and model_cases.parse_size("16k") == 16000
    assert model_cases.parse_size("16_777_216") == 2**24


def test_list_json(capsys):
    assert cli.main(["list", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["matrix"]) == set(registry.OPS)
    assert d["matrix"]["relu"]["numpy"] == "ok"
    assert d["matrix"]["relu_mask"]["torch"] == "omit"
    torch = next(b for b in d["backends"] if b["name"] == "torch")
    assert "packed-mask" in torch["omitted"]["relu_grad_mask"]
    for b in d["backends"]:
        assert b["available"] or b["reason"]


def test_list_table(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "relu_grad_mask" in out and "numba_cuda" in out
    assert "torch leaves out relu_mask, relu_grad_mask: torch has no packed-mask kernel" in out


def test_run_end_to_end(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu,sigmoid_grad,relu_mask", "--backends", "numpy", "--sizes", "1000,2**12",
                   "--out", str(out)])
    assert rc == 0
    run = results.load(out)
    assert len(run.results) == 6 and all(e.status is Status.OK for e in run.results)
    e = run.results[0]
    assert e.n >= 10 and len(e.samples_s) == e.n and e.gbps > 0 and e.pct_peak > 0
    assert e.speedup_vs_numpy == 1.0
    assert run.peaks["cpu"]["gbps"] == 10.0
    assert out.with_suffix(".md").read_text().count("###") >= 3
    pngs = sorted(p.name for p in (tmp_path / "r-plots").iterdir())
    assert pngs == ["relu-float32.png", "relu_mask-float32.png", "sigmoid_grad-float32.png"]
    printed = capsys.readouterr().out
    assert "relu_mask" in printed and "GB/s" in printed


def test_ctrl_c_saves_what_was_measured(tmp_path, monkeypatch, capsys):
    interrupt_on_call(monkeypatch, elementwise, "_run_case", 3)       # Ctrl-C during the third case
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu", "--backends", "numpy", "--sizes", "100,200,300,400", "--out", str(out),
                   "--no-interleave"])     # one case at a time (interleaved: tests/test_bench_interleave.py)
    assert rc == 130
    run = results.load(out)
    assert run.interrupted is True and len(run.results) == 2
    assert "interrupted" in capsys.readouterr().out


def test_failed_case_is_not_timed_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))

    @registry.register("relu", "numpy")
    def relu_zeros(x, out=None):
        out = np.empty_like(x) if out is None else out
        out[...] = 0
        return out
    out = tmp_path / "r.json"
    assert cli.main(["run", "--ops", "relu", "--backends", "numpy", "--sizes", "1000", "--out", str(out),
                     "--no-plots"]) == 1
    e = results.load(out).results[0]
    assert e.status is Status.FAILED and e.median_s is None and e.samples_s is None
    assert "FAILED" in capsys.readouterr().out


def test_unsupported_dtype_is_skipped_with_reason(tmp_path):
    slow = [b.name for b in registry.all_backends() if b.available and b.device == "cpu" and "float16" not in b.dtypes]
    if not slow:
        pytest.skip("every CPU backend here supports float16")
    out = tmp_path / "r.json"
    cli.main(["run", "--ops", "relu", "--backends", slow[0], "--dtypes", "float16", "--sizes", "64",
              "--out", str(out), "--no-plots"])
    e = results.load(out).results[0]
    assert e.status is Status.SKIPPED and "float16" in e.reason


def test_report_side_by_side(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for p in (a, b):
        assert cli.main(["run", "--ops", "relu", "--backends", "numpy", "--sizes", "512", "--out", str(p),
                         "--no-plots"]) == 0
    capsys.readouterr()
    assert cli.main(["report", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "a.json" in out and "b.json" in out
    assert re.search(r"\b\d+\.\d\dx\b", out), out          # b's median as a ratio to a's, e.g. 1.02x


def test_an_unavailable_backend_named_explicitly_is_skipped_not_a_crash(tmp_path, monkeypatch):
    """--backends naming a backend that cannot run here: its cases are skipped with the reason,
    and no peak is probed on a device nothing will be timed on."""
    gone = [b for b in registry.all_backends() if not b.available or b.simulated]
    if not gone:
        pytest.skip("every backend runs here")
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu", "--backends", f"numpy,{gone[0].name}", "--sizes", "100",
                   "--out", str(out), "--no-plots"])
    assert rc == 0
    run = results.load(out)
    by_backend = {e.backend: e for e in run.results}
    assert by_backend[gone[0].name].status is Status.SKIPPED and by_backend[gone[0].name].reason
    assert by_backend["numpy"].status is Status.OK
    assert set(run.peaks) == {"cpu"}


def test_inputs_move_to_a_backend_once():
    moves = []
    be = dataclasses.replace(registry.backend("numpy"), to_native=lambda a: moves.append(id(a)) or a)
    host = elementwise.Inputs("float32", 64, seed=0)
    for op in ("relu", "relu_grad", "leaky_relu_grad", "relu", "sigmoid"):
        host.on(be, op)
    assert sorted(moves) == sorted({id(host.x), id(host.dy)})
