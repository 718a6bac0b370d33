"""numba_cpu faults (issue 17, items 5 and 6, and its API errors): a tuning-cache file of the wrong
structure, or an entry a kernel cannot use (a block of 0, a string time), is measured again with a
note and repaired, never used; bad ACTBENCH_STORES / ACTBENCH_BLOCK / ACTBENCH_SERIAL_MAX values
are a ValueError from the library and exit 2 from the CLI before anything is measured; a read-only
out= or an np.matrix is a clear error like NumPy's, not a numba TypingError; NumPy scalars are
real numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kernels
import kernels.backends.numba_cpu as K
from bench.cli import main as cli
from bench.run import runner
from kernels.backends.numba_cpu import strategy as S
from tests.test_kernels_numba_cpu_strategy import FakeProbe

KEY = "cpu A | 2 cores"


class FakeSplit:
    def __init__(self):
        self.calls = []

    def __call__(self, op, dtype, sizes):
        self.calls.append((op, dtype))
        return {n: ([1.0, 1.0], [2.0, 2.0]) for n in sizes}       # serial always wins


def _strategy(tmp_path, probe=None, split=None, **env):
    return S.StoreStrategy(probe or FakeProbe(), llc_bytes=32 * 2**20, key=KEY, split_probe=split or FakeSplit(),
                           busy=lambda: False, env={"ACTBENCH_CACHE_DIR": str(tmp_path), **env})


def _cache(tmp_path):
    return tmp_path / "numba_cpu-stores.json"


def _entry(**over):
    e = {"stream": True, "block": S.DEFAULT_BLOCK, "speedup": 1.2, "inconclusive": False, "time": 1e9}
    e.update(over)
    return e


BAD_FILES = {
    "schema only": {"schema": 1},
    "machines a list": {"schema": 1, "machines": []},
    "machine a list": {"schema": 1, "machines": {KEY: []}},
    "top a list": [1, 2],
    "string time": {"schema": 1, "machines": {KEY: {"memory/float32": _entry(time="yesterday"),
                                                     "split/relu/float32": {"serial_max": 5, "time": 1}}}},
    "block 0": {"schema": 1, "machines": {KEY: {"memory/float32": _entry(block=0)}}},
    "block negative": {"schema": 1, "machines": {KEY: {"memory/float32": _entry(block=-64)}}},
    "block not a multiple of 64": {"schema": 1, "machines": {KEY: {"memory/float32": _entry(block=1000)}}},
    "block a string": {"schema": 1, "machines": {KEY: {"memory/float32": _entry(block="big")}}},
    "stream a string": {"schema": 1, "machines": {KEY: {"memory/float32": _entry(stream="no")}}},
    "inconclusive, string time": {"schema": 1, "machines": {KEY: {"memory/float32":
                                                                  _entry(inconclusive=True, time="x")}}},
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_wrong_cache_is_measured_again_with_a_note_and_repaired(tmp_path, name):
    _cache(tmp_path).write_text(json.dumps(BAD_FILES[name]))
    probe = FakeProbe()
    got = _strategy(tmp_path, probe).choose("memory", "float32")
    assert probe.calls == [("memory", "float32")]
    assert got.block > 0 and got.block % 64 == 0
    if name not in ("top a list", "schema only", "machines a list", "machine a list"):
        assert "invalid" in got.source                              # the note: why it measured again
    again = FakeProbe()                                             # the file is whole again
    assert _strategy(tmp_path, again).choose("memory", "float32").source.startswith("cached")
    assert again.calls == []


@pytest.mark.parametrize("serial_max", [-5, "many", 2.5, None, True])
def test_a_wrong_cached_serial_threshold_is_measured_again(tmp_path, serial_max):
    _cache(tmp_path).write_text(json.dumps({"schema": 1, "machines": {KEY: {
        "split/relu/float32": {"serial_max": serial_max, "time": 1}}}}))
    split = FakeSplit()
    st = _strategy(tmp_path, split=split)
    assert st.serial_max("relu", "float32") == 2 * S.SPLIT_SIZES[-1]
    assert split.calls == [("relu", "float32")]


def test_a_cached_block_of_0_never_reaches_a_kernel(tmp_path, monkeypatch):
    # before: kernels.get("relu", "numba_cpu")(x) returned all zeros through the library, silently
    _cache(tmp_path).write_text(json.dumps(BAD_FILES["block 0"]))
    st = S.StoreStrategy(FakeProbe(), llc_bytes=4096, key=KEY, env={"ACTBENCH_CACHE_DIR": str(tmp_path)})
    monkeypatch.setattr(K, "STRATEGY", st)
    x = np.linspace(-3, 3, 4096, dtype=np.float32)
    np.testing.assert_array_equal(kernels.get("relu", "numba_cpu")(x), np.maximum(x, 0))


# ------------------------------------------------------------------------------ item 6: the environment

BAD_ENV = [("ACTBENCH_STORES", "sometimes"), ("ACTBENCH_BLOCK", "0"), ("ACTBENCH_BLOCK", "-64"),
           ("ACTBENCH_BLOCK", "1000"), ("ACTBENCH_BLOCK", "lots"), ("ACTBENCH_SERIAL_MAX", "1e6"),
           ("ACTBENCH_SERIAL_MAX", "-1"), ("ACTBENCH_SPARSE_METHOD", "fastest")]


@pytest.mark.parametrize("name,value", BAD_ENV)
def test_a_bad_environment_value_is_exit_2_before_anything_is_measured(monkeypatch, capsys, tmp_path, name, value):
    monkeypatch.setenv(name, value)

    def measured(*a, **k):
        raise AssertionError("measured before the environment was checked")
    monkeypatch.setattr(runner, "run_cases", measured)
    assert cli.main(["run", "--ops", "relu", "--backends", "numpy,numba_cpu", "--sizes", "100",
                     "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and err.strip().count("\n") == 0


def test_a_bad_environment_value_does_not_stop_a_run_without_numba_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTBENCH_BLOCK", "0")
    from tests.fakes import patch_peaks
    patch_peaks(monkeypatch)
    assert cli.main(["run", "--ops", "relu", "--backends", "numpy", "--sizes", "100", "--no-plots",
                     "--out", str(tmp_path / "r.json")]) == 0


@pytest.mark.parametrize("name,value", BAD_ENV)
def test_the_library_says_a_bad_environment_value_as_a_value_error(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        registry_backend().check_settings()


def registry_backend():
    from kernels import registry
    return registry.backend("numba_cpu")


# ------------------------------------------------------------------------------ API errors

def test_a_read_only_out_is_a_value_error_like_numpys():
    x = np.ones(100, np.float32)
    out = np.empty_like(x)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        kernels.get("relu", "numba_cpu")(x, out=out)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_a_matrix_input_is_a_clear_type_error():
    m = np.matrix(np.ones((4, 4), np.float32))
    with pytest.raises(TypeError, match="matrix"):
        kernels.get("relu", "numba_cpu")(m)


@pytest.mark.parametrize("slope", [np.float32(0.1), np.float64(0.1), np.int64(0), 0.1, 1])
def test_numpy_scalars_are_real_numbers(slope):
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    got = kernels.get("leaky_relu", "numba_cpu")(x, slope=slope)
    np.testing.assert_allclose(got, np.where(x > 0, x, np.float32(slope) * x), rtol=1e-6)


@pytest.mark.parametrize("slope", [True, np.bool_(True), "0.1", np.float32("nan"), np.array([0.1])])
def test_what_is_not_one_finite_real_number_is_still_refused(slope):
    with pytest.raises(TypeError, match="slope"):
        kernels.get("leaky_relu", "numba_cpu")(np.ones(8, np.float32), slope=slope)
