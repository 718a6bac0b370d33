"""A user's own kernels (`--plugin`, bench/run/plugins.py): the example plugin runs through
`python -m bench run` and `bench list` like any backend, with its record in the run's env; a
plugin that cannot load is one line and exit 2; a wrong kernel of a plugin is FAILED, never timed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.cli import main as cli
from bench.model import results
from bench.model.results import Status
from kernels import registry
from tests.fakes import patch_peaks

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my_relu.py"


def _bench(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **(env or {})), check=False)


@pytest.fixture
def own_registry(monkeypatch, tmp_path):
    """What a plugin (a file under tmp_path) declares, registers and imports in this process is gone
    after the test."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))
    monkeypatch.setattr(registry, "_STATES", dict(registry._STATES))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:      # the plugins' own modules only (never a library's)
        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def _plugin(tmp_path: Path, body: str, name: str = "user_plugin.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# a backend of the user's own, on the host: what every plugin below declares
HOST_BACKEND = """\
import numpy as np
import kernels

kernels.declare_backend(kernels.Backend(
    name={name!r}, library="numpy", default_device="cpu", probe=lambda: kernels.Available(description="test"),
    to_native=np.asarray, to_numpy=np.asarray, is_native=lambda a: type(a) is np.ndarray, empty=np.empty))
"""


@pytest.mark.slow
def test_the_example_runs_through_bench_run_and_is_in_the_json(tmp_path):
    out = tmp_path / "r.json"
    p = _bench("run", "--plugin", "examples/my_relu.py", "--ops", "relu", "--sizes", "2**12,2**16",
               "--budget", "0.01", "--no-plots", "--out", str(out))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "my_numba" in p.stdout
    run = results.load(out)
    mine = [e for e in run.results if e.backend == "my_numba"]
    assert {e.size for e in mine} == {2**12, 2**16}
    for e in mine:
        assert e.status is Status.OK and e.median_s > 0 and e.samples_s and e.pct_peak and e.speedup_vs_numpy
    [rec] = run.env["plugins"]
    assert rec["path"] == str(EXAMPLE) and rec["backends"] == ["my_numba"] and rec["kernels"] == ["relu@my_numba"]
    assert rec["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()


def test_bench_list_shows_the_example():
    p = _bench("list", "--json", "--plugin", "examples/my_relu.py")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["matrix"]["relu"]["my_numba"] == "ok" and d["matrix"]["sigmoid"]["my_numba"] == "-"
    assert d["plugins"][0]["path"] == str(EXAMPLE)
    table = _bench("list", "--plugin", "examples/my_relu.py")
    assert table.returncode == 0 and "my_numba" in table.stdout and "plugin examples/my_relu.py" in table.stdout


def test_an_installed_plugin_is_loaded_from_its_entry_point(tmp_path):
    """A distribution on the path whose entry points name a module in group actbench.plugins."""
    _plugin(tmp_path, HOST_BACKEND.format(name="installed") + textwrap.dedent("""
        @kernels.register("relu", "installed")
        def relu(x, out=None):
            return np.maximum(x, 0, out=out)
        """), name="installed_kernels.py")
    info = tmp_path / "installed_kernels-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: installed-kernels\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[actbench.plugins]\nmine = installed_kernels\n")
    p = _bench("list", "--json", env={"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"})
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["matrix"]["relu"]["installed"] == "ok"
    assert d["plugins"][0]["source"] == "entry point" and d["plugins"][0]["module"] == "installed_kernels"


def test_a_plugin_by_module_name(tmp_path, monkeypatch, own_registry, capsys):
    _plugin(tmp_path, HOST_BACKEND.format(name="by_name") + textwrap.dedent("""
        @kernels.register("relu", "by_name")
        def relu(x, out=None):
            return np.maximum(x, 0, out=out)
        """), name="by_name_kernels.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["list", "--json", "--plugin", "by_name_kernels"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["matrix"]["relu"]["by_name"] == "ok" and d["plugins"][0]["source"] == "module"


BAD = {
    "missing file": (None, "--plugin {dir}/nope.py: no such file"),
    "missing module": ("no_such_module_xyz", "--plugin no_such_module_xyz: no such file or importable module"),
    "import error": ("import numpy\nimport no_such_dependency_xyz\n",
                     "ModuleNotFoundError: No module named 'no_such_dependency_xyz' (at {path}:2: import no_such"),
    "exception": ("x = 1\nraise RuntimeError('boom')\n", "RuntimeError: boom (at {path}:2: raise RuntimeError"),
    "syntax error": ("def f(:\n", "SyntaxError: "),
    "existing backend": (HOST_BACKEND.format(name="numpy"),
                         "ValueError: a backend named 'numpy' exists already; give yours another name (at {path}:4"),
    "unknown op": (HOST_BACKEND.format(name="mine") + "\n@kernels.register('gelu_xyz', 'mine')\ndef f(x, out=None):\n"
                   "    return x\n", "LookupError: unknown op 'gelu_xyz'; valid ops: relu"),
    "replaces a kernel": ("import kernels\n\n@kernels.register('relu', 'numpy')\ndef f(x, out=None):\n    return x\n",
                          "ValueError: op 'relu' has a kernel on backend 'numpy' already"),
    "internal re-declaration": ("import dataclasses\nfrom kernels import registry\n"
                                "registry.declare_backend(dataclasses.replace(registry.backend('numpy')))\n",
                                "declares backend 'numpy', which exists already"),
    "nothing declared": ("x = 1\n", "declares no backend and registers no kernel"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_plugin_that_cannot_load_is_one_line_and_exit_2(case, tmp_path, own_registry, capsys):
    body, expected = BAD[case]
    if body is None:
        arg = str(tmp_path / "nope.py")
    elif body.isidentifier():
        arg = body
    else:
        arg = str(_plugin(tmp_path, body))
    assert cli.main(["list", "--plugin", arg]) == 2
    err = capsys.readouterr().err
    assert expected.format(dir=tmp_path, path=arg) in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_errors_from_a_real_process_are_one_line(tmp_path):
    path = _plugin(tmp_path, "raise RuntimeError('boom')\n")
    p = _bench("run", "--plugin", str(path), "--ops", "relu")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert f"RuntimeError: boom (at {path}:1" in p.stderr


def test_a_wrong_plugin_kernel_is_failed_and_never_timed(tmp_path, monkeypatch, own_registry, capsys):
    """A relu that forgets the negatives (a copy): the gate rejects it, as any backend's."""
    patch_peaks(monkeypatch)
    path = _plugin(tmp_path, HOST_BACKEND.format(name="wrong") + textwrap.dedent("""
        @kernels.register("relu", "wrong")
        def relu(x, out=None):
            y = np.empty_like(x) if out is None else out
            y[...] = x                      # wrong: negatives pass
            return y
        """))
    out = tmp_path / "r.json"
    code = cli.main(["run", "--plugin", str(path), "--ops", "relu", "--backends", "numpy,wrong", "--sizes", "2**12",
                     "--budget", "0.01", "--no-plots", "--no-interleave", "--out", str(out)])
    assert code == 1
    assert "FAILED" in capsys.readouterr().out
    run = results.load(out)
    [bad] = [e for e in run.results if e.backend == "wrong"]
    assert bad.status is Status.FAILED and bad.median_s is None and not bad.samples_s
    [ok] = [e for e in run.results if e.backend == "numpy"]
    assert ok.status is Status.OK and ok.median_s
    assert run.env["plugins"][0]["backends"] == ["wrong"]
