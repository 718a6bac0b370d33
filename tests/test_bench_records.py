"""Backend records never change; what a probe finds is a state the registry keeps (kernels/registry.py).

The case that made the rule: a CUDA build of torch. Its record says where it runs by default (the
CPU), its probe finds the GPU, and every reader (`bench run --device`, `bench list`) must see the
probed device, never a record rewritten behind their backs.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bench.cli import main as cli
from bench.run import runner
from kernels import registry


@pytest.fixture
def probes(monkeypatch):
    """A throw-away backend 'probed' whose probe counts its calls and returns what the test says."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    calls, answer = [], {"value": None}

    def probe():
        calls.append(1)
        return answer["value"]
    registry.declare_backend(registry.Backend(
        name="probed", library="numpy", default_device="cpu", probe=probe, to_native=np.asarray,
        to_numpy=np.asarray, is_native=lambda a: isinstance(a, np.ndarray), empty=lambda s, d: np.empty(s, d)))
    yield calls, answer
    registry.forget_states("probed")


def test_a_record_cannot_be_changed():
    be = registry.backend("numpy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        be.device = "gpu"
    with pytest.raises(dataclasses.FrozenInstanceError):
        be.library = "cupy"


def test_the_probe_runs_once_and_its_state_is_kept(probes):
    calls, answer = probes
    answer["value"] = registry.Available(device="gpu", description="found it")
    be = registry.backend("probed")
    assert (be.available, be.device, be.description, be.reason) == (True, "gpu", "found it", "")
    assert be.default_device == "cpu"                    # the record still says what was declared
    assert be.state is registry.backend("probed").state and len(calls) == 1


def test_a_reason_is_an_unavailable_state_and_none_an_available_one(probes):
    calls, answer = probes
    answer["value"] = "library missing"
    be = registry.backend("probed")
    assert (be.available, be.reason, be.device) == (False, "library missing", "cpu")
    registry.forget_states("probed")
    answer["value"] = None                               # a probe's None: available, as declared
    assert be.available and be.device == "cpu"


def test_a_probe_that_raises_is_unavailable_with_the_error(monkeypatch):
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))

    def broken():
        raise OSError("driver gone")
    be = registry.declare_backend(dataclasses.replace(registry.backend("numpy"), name="broken", probe=broken))
    try:
        assert not be.available and be.reason == "probe failed: OSError: driver gone"
    finally:
        registry.forget_states("broken")


@pytest.fixture
def torch_on_cuda(monkeypatch):
    """torch as a CUDA build sees it: is_available() true, a device name. Nothing is allocated."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU 80GB")
    registry.forget_states("torch")
    yield
    registry.forget_states("torch")


class _Planned(Exception):
    """Raised instead of running: carries the cases `bench run` would measure."""


def _planned_cases(monkeypatch, argv: list[str]):
    def capture(profile, cases, **kw):
        raise _Planned(cases)
    monkeypatch.setattr(runner, "run_cases", capture)
    with pytest.raises(_Planned) as planned:
        cli.main(argv)
    return planned.value.args[0]


def test_torch_on_cuda_is_a_gpu_backend_everywhere(torch_on_cuda, monkeypatch, capsys):
    be = registry.backend("torch")
    assert be.device == "gpu" and be.default_device == "cpu" and "CUDA (Fake GPU 80GB)" in be.description

    on_gpu = _planned_cases(monkeypatch, ["run", "--device", "gpu", "--ops", "relu", "--sizes", "64"])
    assert [(c.backend, c.device) for c in on_gpu if c.backend == "torch"] == [("torch", "gpu")]

    on_cpu = _planned_cases(monkeypatch, ["run", "--device", "cpu", "--ops", "relu", "--sizes", "64"])
    assert on_cpu and all(c.device == "cpu" for c in on_cpu)
    assert "torch" not in {c.backend for c in on_cpu}

    capsys.readouterr()
    assert cli.main(["list", "--json"]) == 0
    listed = {b["name"]: b for b in json.loads(capsys.readouterr().out)["backends"]}
    assert listed["torch"]["device"] == "gpu" and "CUDA" in listed["torch"]["description"]
    assert listed["torch"]["library"] == "torch" and listed["numba_cpu"]["library"] == "numpy"


def test_torch_on_cpu_stays_a_cpu_backend(monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    assert registry.backend("torch").device == "cpu"
    on_cpu = _planned_cases(monkeypatch, ["run", "--device", "cpu", "--ops", "relu", "--sizes", "64"])
    assert ("torch", "cpu") in {(c.backend, c.device) for c in on_cpu}
    nothing = ["run", "--device", "gpu", "--ops", "relu", "--sizes", "64", "--backends", "numpy,torch"]
    assert cli.main(nothing) == 2                      # no case left: a usage error, nothing run
