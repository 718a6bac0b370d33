"""numba_cpu's batched sparse_matmul methods (kernels/numba_sparse.py) and the measured choice
between them (kernels/backends/numba_cpu/sparse_method.py): each method, forced, on the correctness gate's
awkward sizes and special values against the float64 oracle; the BLAS method's check that sends a
product with a non-finite weight beside a zero activation back to the sparse method; the probe
that picks the faster method per case class and keeps it on disk."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bench.measure.check import check_call
from kernels import ops as R
from kernels.backends.numba_cpu import sparse as numba_sparse
from kernels.backends.numba_cpu import sparse_method as M


def activations(shape, sparsity, dtype, rng):
    a = rng.standard_normal(shape).astype(dtype)
    a[rng.random(shape) < sparsity] = 0
    return a


def assert_close(y, a, w):
    assert y.shape == R.sparse_matmul_layout(a, w)[0] and y.dtype == w.dtype
    err = R.sparse_matmul_error(y, a, w)
    tol = R.sparse_matmul_tolerance(str(w.dtype), a.shape[-1])
    assert err <= tol, f"worst error {err:.3g} > tolerance {tol:.3g}"


@pytest.fixture(params=M.METHODS)
def method(request, monkeypatch):
    """numba_cpu's batched calls forced onto one method (batch-1 calls measure theirs, saved in the
    tests' cache folder: conftest.py's ACTBENCH_CACHE_DIR, never the user's)."""
    monkeypatch.setattr(numba_sparse, "METHOD", M.MethodChoice(env=dict(os.environ, ACTBENCH_SPARSE_METHOD=request.param)))
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 127, 129), (8, 129, 127), (65, 31, 7), (2, 1, 300), (1, 127, 129),
                                   (64, 255, 1031)], ids=str)
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
def test_each_method_matches_the_oracle(method, dtype, shape, sparsity, rng):
    batch, k, n = shape
    a, w = activations((batch, k), sparsity, dtype, rng), rng.standard_normal((k, n)).astype(dtype)
    assert_close(numba_sparse.sparse_matmul(a, w), a, w)


@pytest.mark.parametrize("batch, k, n", [(3, 129, 127), (65, 127, 129), (8, 1031, 517)])
def test_each_method_through_the_gate(method, batch, k, n, rng):
    """bench.check.check_call: poisoned out=, then allocating, inputs untouched."""
    for dtype in ("float32", "float64"):
        a = activations((batch, k), 0.6, dtype, rng)
        r = check_call("sparse_matmul", "numba_cpu", (a, rng.standard_normal((k, n)).astype(dtype)))
        assert r.ok, r.message


SPECIALS = {
    "nan weight in a skipped row": ("w", "skipped", np.nan),
    "inf weight in a skipped row": ("w", "skipped", np.inf),
    "-inf weight in a row some activations skip": ("w", "mixed", -np.inf),
    "nan weight in a row some activations skip": ("w", "mixed", np.nan),
    "inf weight in a row every activation reads": ("w", "full", np.inf),
    "nan activation": ("a", None, np.nan),
    "inf activation": ("a", None, np.inf),
    "-inf activation": ("a", None, -np.inf),
    "-0 activations": ("a", None, -0.0),
    "huge weights": ("w", "all", 1e35),        # sums of 129 stay below float32 max
    "huge activations": ("a", None, 1e35),
    "subnormal weights": ("w", "all", 1e-40),
    "subnormal activations": ("a", None, 1e-40),
}


@pytest.mark.parametrize("special", list(SPECIALS))
@pytest.mark.parametrize("batch", [3, 8, 65])
def test_each_method_on_special_values(method, special, batch, rng):
    where, rows, value = SPECIALS[special]
    k, n = 129, 127
    a = np.abs(activations((batch, k), 0.5, "float32", rng))
    a[:, :8] = 0                                   # units 0-7: zero in every row (skipped rows)
    a[0, 8:16] = 0                                 # units 8-15: zero in row 0 only (mixed)
    a[1:, 8:16] = 1.0
    a[:, 16:24] = 1.0                              # units 16-23: present in every row
    w = rng.standard_normal((k, n)).astype(np.float32)
    if where == "w":
        target = {"skipped": slice(0, 8), "mixed": slice(8, 16), "full": slice(16, 24), "all": slice(None)}[rows]
        if rows == "all":
            w[:] = np.sign(w) * np.float32(value)
        else:
            w[target, ::5] = value
    elif value == -0.0:
        a[a == 0] = -0.0
    else:
        a[rng.random(a.shape) < 0.02] = value
        a[2, 20] = value
    y = numba_sparse.sparse_matmul(a, w)
    assert_close(y, a, w)
    if rows == "skipped":
        assert np.isfinite(y).all()


@pytest.mark.parametrize("method", ["blas", "blas_gather"])
def test_blas_method_sends_a_non_finite_weight_beside_a_zero_back(method, monkeypatch, rng):
    """The BLAS product multiplies the zero activations of the block: with an inf weight there it
    gives NaN, the check sees it, and the sparse method computes the product instead."""
    monkeypatch.setattr(numba_sparse, "METHOD", M.MethodChoice(env={"ACTBENCH_SPARSE_METHOD": method}))
    calls = []
    sparse = numba_sparse._sparse_product
    monkeypatch.setattr(numba_sparse, "_sparse_product", lambda *a: (calls.append(1), sparse(*a)))
    a = np.abs(activations((4, 64), 0.3, "float32", rng))
    w = rng.standard_normal((64, 40)).astype(np.float32)
    assert_close(numba_sparse.sparse_matmul(a, w), a, w)
    assert calls == []                             # finite weights: BLAS's product is the op's
    a[0, 5], a[1:, 5] = 0, 1                       # unit 5 needed by rows 1-3 only
    w[5, 3] = np.inf
    y = numba_sparse.sparse_matmul(a, w)
    assert calls == [1]
    assert_close(y, a, w)
    assert np.isfinite(y[0]).all() and np.isinf(y[1:, 3]).all()


@pytest.mark.parametrize("per", [1, 7, 39, 40, 1000])
@pytest.mark.parametrize("batch", [1, 3, 17])
def test_the_gather_in_blocks_adds_every_block_once(monkeypatch, per, batch, rng):
    """The needed rows gathered `per` at a time into a reused block, each block's product added
    into y: one block, exact multiples of the 40 needed rows, a short last block; the rows no
    activation needs (NaN here) are never read; a float64 call after a float32 one grows nothing
    it should not (the buffers are per dtype)."""
    monkeypatch.setattr(numba_sparse, "_gather_rows", lambda n, itemsize: per)
    for dtype in ("float32", "float64", "float32"):
        a = np.abs(activations((batch, 50), 0.0, dtype, rng))
        a[:, 10:20] = 0
        w = rng.standard_normal((50, 9)).astype(dtype)
        w[10:20] = np.nan
        idx = np.empty(50, np.int64)
        nk, _ = numba_sparse._needed_columns(a, idx)
        y = np.full((batch, 9), np.nan, dtype)
        assert numba_sparse._blas_product(a, w, y, idx, nk, gather=True)
        assert_close(y, a, w)


def test_blas_product_gathers_only_the_needed_rows(rng):
    a = np.abs(activations((3, 50), 0.0, "float32", rng))
    a[:, 10:20] = 0
    w = rng.standard_normal((50, 9)).astype(np.float32)
    w[10:20] = np.nan                              # never read: not needed by any row
    idx = np.empty(50, np.int64)
    nk, present = numba_sparse._needed_columns(a, idx)
    assert nk == 40 and present == 120 and list(idx[:nk]) == [*range(10), *range(20, 50)]
    y = np.full((3, 9), np.nan, np.float32)
    assert numba_sparse._blas_product(a, w, y, idx, nk, gather=True)
    assert_close(y, a, w)
    assert not numba_sparse._blas_product(a, w, y, idx, nk, gather=False)    # 0 * NaN: computed again
    z = np.zeros((3, 50), np.float32)
    assert numba_sparse._needed_columns(z, idx) == (0, 0)
    assert numba_sparse._blas_product(z, w, y, idx, 0, gather=True) and (y == 0).all()


def test_key_classes():
    assert M.key("float32", 64, 8192, 8192, 64 * 4096, 8100, 4, 32 * 2**20) == "float32/b64/p0.5/r1/memory"
    assert M.key("float32", 65, 127, 129, 0, 0, 4, 32 * 2**20) == "float32/b64/p0/r0/cache"
    assert M.key("float64", 3, 100, 10, 150, 90, 8, 32 * 2**20) == "float64/b2/p0.5/r0.9/cache"


class FakeClock:
    """A clock that each timed run advances by its method's cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_probe_keeps_the_faster_method_and_saves_it(tmp_path):
    clock = FakeClock()
    ran = []

    def runner(name, cost):
        def run():
            ran.append(name)
            clock.now += cost
        return run

    env = {"ACTBENCH_CACHE_DIR": str(tmp_path)}
    choice = M.MethodChoice(env=env, clock=clock)
    choice._machine = "test machine"
    run = {"sparse": runner("sparse", 2.0), "blas": runner("blas", 1.0), "blas_gather": runner("blas_gather", 1.5)}
    assert choice.choose("float32/b64/p1/r1/memory", run) == "blas"
    assert ran == [m for r in range(M.ROUNDS) for m in M.order(r)]
    assert ran[:6] == ["sparse", "blas", "blas_gather", "blas", "blas_gather", "sparse"]   # each first in turn
    assert choice.choose("float32/b64/p1/r1/memory", run) == "blas" and len(ran) == len(M.METHODS) * M.ROUNDS
    run = {"sparse": runner("sparse", 0.5), "blas": runner("blas", 1.0), "blas_gather": runner("blas_gather", 0.7)}
    assert choice.choose("float32/b8/p0.1/r0.4/memory", run) == "sparse"
    saved = json.loads((tmp_path / "numba_cpu-sparse.json").read_text())
    entries = saved["machines"]["test machine"]
    assert {k: v["method"] for k, v in entries.items()} == {"float32/b64/p1/r1/memory": "blas",
                                                             "float32/b8/p0.1/r0.4/memory": "sparse"}
    again = M.MethodChoice(env=env, clock=clock)              # a later process: from the disk
    again._machine = "test machine"
    n = len(ran)
    assert again.choose("float32/b8/p0.1/r0.4/memory", run) == "sparse" and len(ran) == n
    assert again.report()["choices"]["float32/b8/p0.1/r0.4/memory"]["source"] == "cached"
    other = M.MethodChoice(env=env, clock=clock)              # another machine key: measured anew
    other._machine = "another machine"
    other.choose("float32/b8/p0.1/r0.4/memory", run)
    assert len(ran) == n + len(M.METHODS) * M.ROUNDS


class ScriptedClock:
    """A clock whose successive timed runs last the scripted seconds (start and end read per run)."""

    def __init__(self, seconds):
        self.seconds, self.now, self.reads = list(seconds), 0.0, 0

    def __call__(self):
        self.reads += 1
        if self.reads % 2 == 0:                 # the end of a run
            self.now += self.seconds.pop(0)
        return self.now


def _rounds(per_round):
    """Scripted seconds of a probe: per round, each method's time given in METHODS order, played
    in the order the probe runs them."""
    return [times[M.METHODS.index(m)] for r, times in enumerate(per_round) for m in M.order(r)]


@pytest.mark.parametrize("per_round, conclusive", [
    ([(2.0, 1.0, 1.5)] * 4, True),                                     # steady: blas in both halves
    ([(2.0, 1.0, 1.02), (2.0, 1.02, 1.0)] * 2, True),                  # halves differ, but a tie
    ([(2.0, 1.0, 1.5), (1.0, 2.0, 1.5), (2.0, 1.0, 1.5), (1.0, 2.0, 1.5)], False),  # halves name two methods
    ([(1.0, 2.0, 3.0), (1.1, 2.2, 3.3)] * 2, True),                   # odd rounds 10 % slower, same winner
    ([(1.0, 2.0, 3.0), (1.0, 2.0, 6.0), (1.0, 2.0, 3.0), (1.0, 2.0, 6.0)], False),  # a method's halves 2x apart: busy
])
def test_an_inconclusive_probe_is_used_once_and_never_saved(tmp_path, per_round, conclusive):
    env = {"ACTBENCH_CACHE_DIR": str(tmp_path)}
    choice = M.MethodChoice(env=env, clock=ScriptedClock(_rounds(per_round)))
    choice._machine = "m"
    run = {m: (lambda: None) for m in M.METHODS}
    method = choice.choose("c", run)
    report = choice.report()["choices"]["c"]
    assert report["source"] == ("measured" if conclusive else "inconclusive")
    assert method == min(M.METHODS, key=lambda m: report["seconds"][m])     # the fastest round decides here
    assert (tmp_path / "numba_cpu-sparse.json").exists() == conclusive


def test_a_method_whose_halves_are_far_apart_makes_the_probe_inconclusive():
    quiet, busy = 1.0, 1.0 * M.NOISE * 1.01
    times = {"sparse": [quiet, busy, quiet, busy], "blas": [2.0] * 4, "blas_gather": [3.0] * 4}
    assert not M.conclusive(times)                 # the even half's best 1.0, the odd half's 1.26
    times["sparse"] = [quiet, busy, busy, quiet]   # each half has a quiet round
    assert M.conclusive(times)


def test_an_unusable_cache_entry_is_measured_again(tmp_path):
    (tmp_path / "numba_cpu-sparse.json").write_text(json.dumps(
        {"schema": M.SCHEMA, "machines": {"m": {"c": {"method": "fastest"}}}}))
    choice = M.MethodChoice(env={"ACTBENCH_CACHE_DIR": str(tmp_path)}, clock=FakeClock())
    choice._machine = "m"
    ran = []
    assert choice.choose("c", {m: (lambda m=m: ran.append(m)) for m in M.METHODS}) in M.METHODS
    assert len(ran) == len(M.METHODS) * M.ROUNDS
    (tmp_path / "numba_cpu-sparse.json").write_text("not json")
    assert M.MethodChoice(env={"ACTBENCH_CACHE_DIR": str(tmp_path)})._load() == {}


def test_the_environment_forces_or_is_refused():
    ran = []
    run = {m: (lambda m=m: ran.append(m)) for m in M.METHODS}
    assert M.MethodChoice(env={"ACTBENCH_SPARSE_METHOD": "Sparse "}).choose("c", run) == "sparse"
    assert ran == []
    with pytest.raises(ValueError, match="ACTBENCH_SPARSE_METHOD must be one of sparse, blas, blas_gather or measure"):
        M.MethodChoice(env={"ACTBENCH_SPARSE_METHOD": "fast"}).choose("c", run)


def test_the_real_choice_measures_on_the_call(monkeypatch, tmp_path):
    """Unforced, the first call of a class runs both methods and keeps one; the result is right."""
    monkeypatch.setattr(numba_sparse, "METHOD", M.MethodChoice(env={"ACTBENCH_CACHE_DIR": str(tmp_path)}))
    rng = np.random.default_rng(3)
    a, w = activations((16, 300), 0.5, "float32", rng), rng.standard_normal((300, 200)).astype(np.float32)
    assert_close(numba_sparse.sparse_matmul(a, w), a, w)
    (case, entry), = numba_sparse.METHOD.report()["choices"].items()
    assert case.startswith("float32/b16/p0.5/") and entry["method"] in M.METHODS
    assert set(entry["seconds"]) == set(M.METHODS)


def test_batch_1_measures_its_width_on_the_call(monkeypatch, tmp_path):
    """Unforced, the first batch-1 call of a class runs the kernel at each width (8 and 4 rows per
    pass) and keeps one for the class; the result is right whichever won."""
    monkeypatch.setattr(numba_sparse, "METHOD", M.MethodChoice(env={"ACTBENCH_CACHE_DIR": str(tmp_path)}))
    rng = np.random.default_rng(4)
    a, w = activations((1, 300), 0.5, "float32", rng), rng.standard_normal((300, 200)).astype(np.float32)
    assert_close(numba_sparse.sparse_matmul(a, w), a, w)
    assert_close(numba_sparse.sparse_matmul(a[0], w), a[0], w)
    (case, entry), = numba_sparse.METHOD.report()["choices"].items()
    assert case.startswith("float32/b1/p0.5/") and entry["method"] in M.ROW_METHODS
    assert set(entry["rounds"]) == set(M.ROW_METHODS) and all(len(t) == M.ROUNDS for t in entry["rounds"].values())
