"""The correctness gate rejects known-wrong kernels and accepts right ones (bench/measure/check.py).

Adversarial kernels live beside a right one, on a throw-away backend registered for each test:
returns zeros, writes half its output, mutates its input, reuses an earlier result, computes in
too low a precision, returns the wrong dtype, gets NaN or -inf wrong, ignores out= and returns a
new array, gives an infinity of the wrong sign. Each must be rejected.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench.kinds import elementwise
from bench.measure import check, inputs
from kernels import registry
from kernels.ops import pack_mask


@pytest.fixture
def wrong_backend(monkeypatch):
    """Register kernels on a temporary CPU backend 'wrong'; the registry is restored afterwards."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))
    registry.declare_backend(registry.Backend(
        name="wrong", library="numpy", default_device="cpu", probe=lambda: None, to_native=np.asarray, to_numpy=np.asarray,
        is_native=lambda a: isinstance(a, np.ndarray), empty=lambda s, d: np.empty(s, d),
        dtypes=("float16", "float32", "float64")))

    def add(op, fn, supports_out=True):
        registry.register(op, "wrong", supports_out=supports_out)(fn)
    return add


def _out(out, like):
    return np.empty_like(like) if out is None else out


def _right_relu(x, out=None):
    return np.maximum(x, 0, out=_out(out, x))


def test_right_kernel_passes(wrong_backend, rng):
    wrong_backend("relu", _right_relu)
    for n in (0, 1, 1000, 2**16 + 3):
        assert check.check_call("relu", "wrong", inputs.random_inputs("relu", (n,), "float32", rng)).ok


def test_returns_zeros_is_rejected(wrong_backend, rng):
    def zeros(x, out=None):
        out = _out(out, x)
        out[...] = 0
        return out
    wrong_backend("relu", zeros)
    r = check.check_call("relu", "wrong", inputs.random_inputs("relu", (1000,), "float32", rng))
    assert not r.ok and "wrong" in r.message


def test_writes_half_is_rejected(wrong_backend, rng):
    def half(x, out=None):
        out = _out(out, x)
        np.maximum(x[: x.size // 2], 0, out=out[: x.size // 2])
        return out
    wrong_backend("relu", half)
    assert not check.check_call("relu", "wrong", inputs.random_inputs("relu", (1000,), "float32", rng)).ok


def test_writes_half_is_rejected_at_benchmark_sizes(wrong_backend, rng):
    """Above SAMPLE_ABOVE the reference is sampled, but the poison check still sees every element."""
    def skips_ten(x, out=None):             # leaves 10 elements in the middle unwritten
        out = _out(out, x)
        a = x.size // 2
        np.maximum(x[:a], 0, out=out[:a])
        np.maximum(x[a + 10:], 0, out=out[a + 10:])
        return out
    wrong_backend("relu", skips_ten)
    args = inputs.random_inputs("relu", (2**18 + 5,), "float32", rng)
    r = check.check_call("relu", "wrong", args, sample_above=1024)
    assert not r.ok and "never written" in r.message


def test_mutating_the_input_is_rejected(wrong_backend, rng):
    def in_place(x, out=None):
        np.maximum(x, 0, out=x)
        out = _out(out, x)
        out[...] = x
        return out
    wrong_backend("relu", in_place)
    args = inputs.random_inputs("relu", (1000,), "float32", rng)
    kept = args[0].copy()
    r = check.check_call("relu", "wrong", args)
    assert not r.ok and "modified its input" in r.message
    assert np.array_equal(args[0], kept)          # restored for the cases that follow


def test_reusing_a_previous_result_is_rejected(wrong_backend, rng):
    cache = {}

    def stale(x, out=None):
        if "y" not in cache:
            cache["y"] = np.maximum(x, 0)
        out = _out(out, x)
        out[...] = cache["y"]
        return out
    wrong_backend("relu", stale)
    r = elementwise.small_checks("relu", "wrong", "float32", seed=1)      # several fresh trials
    assert not r.ok


def test_low_precision_is_rejected(wrong_backend, rng):
    def sigmoid_in_half(x, out=None):
        out = _out(out, x)
        out[...] = (1 / (1 + np.exp(-x.astype(np.float16)))).astype(x.dtype)
        return out
    wrong_backend("sigmoid", sigmoid_in_half)
    assert not check.check_call("sigmoid", "wrong", inputs.random_inputs("sigmoid", (1000,), "float32", rng)).ok


def test_wrong_dtype_is_rejected(wrong_backend, rng):
    wrong_backend("relu", lambda x, out=None: np.maximum(x, 0).astype(np.float64), supports_out=False)
    r = check.check_call("relu", "wrong", inputs.random_inputs("relu", (10,), "float32", rng))
    assert not r.ok and "float32" in r.message


def test_nan_dropping_relu_is_rejected(wrong_backend, rng):
    """fmax-style relu turns NaN into 0: only the special values catch it."""
    wrong_backend("relu", lambda x, out=None: np.fmax(x, 0, out=_out(out, x)))
    assert check.check_call("relu", "wrong", inputs.random_inputs("relu", (100,), "float32", rng)).ok
    label, args = inputs.special_inputs("relu", "float32", rng)[0]
    assert not check.check_call("relu", "wrong", args).ok


def test_relu_grad_that_drops_dy_at_nan_x_is_rejected(wrong_backend, rng):
    """dy where x > 0 differs from torch's threshold_backward only where x is NaN: only the special
    values catch it."""
    def where_positive(dy, x, out=None):
        out = _out(out, dy)
        out[...] = np.where(x > 0, dy, 0)
        return out
    wrong_backend("relu_grad", where_positive)
    assert check.check_call("relu_grad", "wrong", inputs.random_inputs("relu_grad", (100,), "float32", rng)).ok
    label, args = inputs.special_inputs("relu_grad", "float32", rng)[0]
    r = check.check_call("relu_grad", "wrong", args)
    assert not r.ok and label == "x special"


def test_overflowing_sigmoid_at_minus_inf_is_accepted_only_when_right(wrong_backend, rng):
    """exp(x) / (1 + exp(x)) gives NaN at +inf (inf / inf): rejected."""
    def naive(x, out=None):
        with np.errstate(all="ignore"):
            e = np.exp(x)
            return np.divide(e, 1 + e, out=_out(out, x))
    wrong_backend("sigmoid", naive)
    args = inputs.special_inputs("sigmoid", "float32", rng)[0][1]
    r = check.check_call("sigmoid", "wrong", args)
    assert not r.ok and "expected" in r.message


def test_ignoring_out_and_returning_a_new_array_is_rejected(wrong_backend, rng):
    """Right values, but out= is ignored: the benchmark would time an allocation each call and
    read an output the kernel never wrote."""
    wrong_backend("relu", lambda x, out=None: np.maximum(x, 0))
    r = check.check_call("relu", "wrong", inputs.random_inputs("relu", (1000,), "float32", rng))
    assert not r.ok and r.message == "with out=, the kernel must return the out array(s) it was given"
    # the same kernel declared as allocating (no out=) is right
    wrong_backend("relu", lambda x, out=None: np.maximum(x, 0), supports_out=False)
    assert check.check_call("relu", "wrong", inputs.random_inputs("relu", (1000,), "float32", rng)).ok


def test_an_infinity_of_the_wrong_sign_is_rejected(wrong_backend, rng):
    """A special-value branch with a sign bug: +inf in, -inf out (every finite value right)."""
    def negates_inf(x, out=None):
        out = np.maximum(x, 0, out=_out(out, x))
        out[np.isinf(out)] *= -1
        return out
    wrong_backend("relu", negates_inf)
    assert check.check_call("relu", "wrong", inputs.random_inputs("relu", (100,), "float32", rng)).ok
    label, args = inputs.special_inputs("relu", "float32", rng)[0]
    assert np.isposinf(args[0]).any()
    r = check.check_call("relu", "wrong", args)
    assert not r.ok and re.search(r"got (np\.float64\()?-inf\)?, expected (np\.float64\()?inf", r.message), r.message
    # and leaky_relu's -inf at x = -inf must not come back as +inf
    x = np.array([-np.inf, np.inf, -1.0], dtype=np.float32)
    assert check.compare("leaky_relu", (x,), np.array([-np.inf, np.inf, -0.01], dtype=np.float32)).ok
    assert not check.compare("leaky_relu", (x,), np.array([np.inf, np.inf, -0.01], dtype=np.float32)).ok


def test_gradient_tolerance_counts_dy():
    """sigmoid_grad near y = 1 loses digits in float32; the error is measured against |dy| too."""
    dy = np.array([1.0, 1.0], dtype=np.float32)
    y = np.array([1 - 2**-24, 0.5], dtype=np.float32)
    exact = dy.astype(np.float64) * y * (1 - y.astype(np.float64))
    off = (exact + np.array([5e-6, 0.0])).astype(np.float32)          # 5e-6 absolute: within 1e-5 * |dy|
    assert check.compare("sigmoid_grad", (dy, y), off).ok
    way_off = (exact + np.array([5e-5, 0.0])).astype(np.float32)
    assert not check.compare("sigmoid_grad", (dy, y), way_off).ok


def test_mask_must_match_bit_for_bit():
    x = np.array([1, -1, 2, 0, np.nan, 3, -0.0, 5, 7], dtype=np.float32)
    y = np.maximum(x, 0)
    good = pack_mask(x)
    assert check.compare("relu_mask", (x,), (y, good)).ok
    bad = good.copy()
    bad[1] ^= 1                      # element 8's bit
    r = check.compare("relu_mask", (x,), (y, bad))
    assert not r.ok and "mask" in r.message


def test_inf_must_be_exact_and_nan_only_where_expected():
    x = np.array([np.inf, -np.inf, np.nan, 1.0], dtype=np.float32)
    assert check.compare("relu", (x,), np.array([np.inf, 0, np.nan, 1], dtype=np.float32)).ok
    assert not check.compare("relu", (x,), np.array([3e38, 0, np.nan, 1], dtype=np.float32)).ok
    assert not check.compare("relu", (x,), np.array([np.inf, 0, 0, 1], dtype=np.float32)).ok
    assert not check.compare("relu", (x,), np.array([np.inf, 0, np.nan, np.nan], dtype=np.float32)).ok


def test_tolerance_table():
    assert check.RTOL == {"float16": 2e-3, "float32": 1e-5, "float64": 1e-12}
    assert check.atol("float32") == np.finfo(np.float32).tiny
    x = np.array([1.0], dtype=np.float32)
    y = np.float32(1 / (1 + np.exp(-1.0)))
    assert check.compare("sigmoid", (x,), np.array([y * (1 + 0.9e-5)], dtype=np.float32)).ok
    assert not check.compare("sigmoid", (x,), np.array([y * (1 + 3e-5)], dtype=np.float32)).ok


def test_sampled_compare_finds_a_wrong_element_in_a_sampled_block():
    n = 2**20
    x = np.linspace(-5, 5, n, dtype=np.float32)
    y = np.maximum(x, 0)
    idx = check.sample_indices(n)
    assert idx.min() == 0 and idx.max() == n - 1 and np.all(np.diff(idx) >= 0)
    y[idx[len(idx) // 2]] += 1
    assert not check.compare("relu", (x,), y, sample=idx).ok


def test_sampled_compare_unpacks_a_mask_input_little_endian():
    # relu_grad_mask(dy, mask) on a sample: the packed mask is unpacked (bit i of byte j is element
    # 8j + i) before the sample picks from it; 1003 elements, not a whole number of bytes
    n = 1003
    x = np.tile(np.array([1, -1, -1, 1, 1, 1, -1, 1, -1], np.float32), n // 9 + 1)[:n]
    dy = np.linspace(1, 2, n, dtype=np.float32)
    mask, dx = pack_mask(x), np.where(x > 0, dy, 0).astype(np.float32)
    idx = np.arange(0, n, 3)
    assert check.compare("relu_grad_mask", (dy, mask), dx, sample=idx).ok
    wrong = dx.copy()
    wrong[idx[7]] = 0 if wrong[idx[7]] else 1                 # one sampled element flipped
    assert not check.compare("relu_grad_mask", (dy, mask), wrong, sample=idx).ok
    # a 2-D dy (17 x 59): the sample's flat indices pick from it flattened
    dy2, x2 = np.linspace(1, 2, 17 * 59, dtype=np.float32).reshape(17, 59), np.resize(x, (17, 59))
    dx2 = np.where(x2 > 0, dy2, 0).astype(np.float32)
    idx2 = np.arange(0, 17 * 59, 5)
    assert check.compare("relu_grad_mask", (dy2, pack_mask(x2)), dx2, sample=idx2).ok


def test_unwritten_is_nan_left_in_a_float_output_of_finite_inputs_only():
    from kernels.ops import OPS
    x = np.array([-1.0, 2.0, 3.0], np.float32)
    assert check._unwritten(OPS["relu"], (x,), (np.maximum(x, 0),)) is None
    assert check._unwritten(OPS["relu"], (x,), (np.array([0, np.nan, 3], np.float32),)) == \
        "y: 1 elements never written (NaN poison left in out)"
    # a NaN in dy gives NaN in dx by right: no poison check (a packed mask input is no float input)
    dy, mask = np.array([np.nan, 1.0, 1.0], np.float32), pack_mask(x)
    assert check._unwritten(OPS["relu_grad_mask"], (dy, mask), (np.array([np.nan, 1, 1], np.float32),)) is None
    assert check._unwritten(OPS["relu_mask"], (x,), (np.maximum(x, 0), mask)) is None


@pytest.mark.parametrize("n", [1000, 5000, 2**20])
def test_sample_indices_are_both_ends_16_blocks_and_2_18_random_elements(n):
    idx = check.sample_indices(n)
    assert len(idx) == 2 * min(n, 2**16) + 16 * 4096 + 2**18
    assert np.array_equal(idx, check.sample_indices(n))         # seeded by n: the same every run
    assert idx.min() == 0 and idx.max() == n - 1 and np.all(np.diff(idx) >= 0)
    counts = np.bincount(idx, minlength=n)
    edge = min(n, 2**16)
    assert np.all(counts[:edge] >= 1) and np.all(counts[n - edge:] >= 1)     # every element of both ends
    if n > 2 * 2**16 + 4096:
        inner = np.flatnonzero(counts[edge:n - edge] >= 1) + edge
        # 16 runs of 4096 consecutive indices among random single ones: at least one full run inside
        runs = np.split(inner, np.flatnonzero(np.diff(inner) > 1) + 1)
        assert sum(len(r) >= 4096 for r in runs) >= 1


def test_a_forward_ops_tolerance_does_not_count_its_input():
    # relu(-1) = 0: 1e-6 is wrong (|dy| widens the tolerance of gradients only)
    assert not check.compare("relu", (np.array([-1.0], np.float32),), np.array([1e-6], np.float32)).ok


def test_a_flushing_backend_is_held_to_the_flushed_answer_only_where_an_input_is_subnormal():
    x = np.array([1e-40, 1.0, -2.0], np.float32)              # the first is subnormal in float32
    flushes = ("float32",)
    assert check.compare("relu", (x,), np.array([0, 1, 0], np.float32), flushes_subnormals=flushes).ok
    assert check.compare("relu", (x,), np.maximum(x, 0), flushes_subnormals=flushes).ok
    assert not check.compare("relu", (x,), np.array([0, 1.5, 0], np.float32), flushes_subnormals=flushes).ok
    # relu_grad(dy, x) at a subnormal x: dy unflushed, 0 flushed; 1e-6 is within the gradient's
    # tolerance of 0 (rtol x |dy|), counted with the flushed inputs' dy
    dy = np.array([1.0], np.float32)
    assert check.compare("relu_grad", (dy, x[:1]), np.array([1e-6], np.float32), flushes_subnormals=flushes).ok


def test_a_two_output_kernel_gets_both_poisoned_outputs(rng):
    # relu_mask writes y and the packed mask into the two preallocated outputs it is given
    x = rng.standard_normal(1001).astype(np.float32)
    assert check.check_call("relu_mask", "numpy", (x,)).ok


def test_a_kernel_wrong_only_when_allocating_says_so(wrong_backend, rng):
    # right into out=, zeros when it allocates: the message names the path that failed
    wrong_backend("relu", lambda x, out=None: _right_relu(x, out) if out is not None else np.zeros_like(x))
    r = check.check_call("relu", "wrong", inputs.random_inputs("relu", (1000,), "float32", rng))
    assert r.ok is False and r.message.startswith("relu on wrong (allocating its output): y: ")


def test_an_output_that_is_not_an_array_fails_with_its_type():
    r = check.compare("relu", (np.ones(3, np.float32),), [1.0, 1.0, 1.0])
    assert (r.ok, r.message) == (False, "y: expected an array, got list")


def test_a_kernel_checked_on_strided_views_of_its_inputs(rng):
    # view(name, array) hands the kernel every other element; the reference sees the same view
    x = rng.standard_normal(2001).astype(np.float32)
    assert check.check_call("relu", "numpy", (x,), view=lambda name, a: a[::2]).ok


def test_the_wrong_number_of_outputs_is_named():
    x = np.ones(3, np.float32)
    r = check.compare("relu_mask", (x,), np.ones(3, np.float32))
    assert (r.ok, r.message) == (False, "expected 2 output(s) (y, mask), got 1")



def test_a_flushing_backend_may_give_a_subnormal_xs_mask_bit_as_the_flushed_x_gives_it():
    # relu_mask at x = 1e-40: the exact bit is 1, the flushed x (+0) gives 0 and y = 0
    x = np.array([1e-40, 1.0, -1.0], np.float32)
    flushed = (np.array([0, 1, 0], np.float32), pack_mask(np.array([0, 1, -1], np.float32)))
    assert check.compare("relu_mask", (x,), flushed, flushes_subnormals=("float32",)).ok
    assert not check.compare("relu_mask", (x,), flushed).ok


def test_an_op_with_its_own_criterion_is_judged_by_it_through_compare():
    # sparse_matmul is checked by its spec's compare (error against |a| @ |w| within a tolerance),
    # given the outputs and the inputs: a right product passes, a product off in one element fails
    rng = np.random.default_rng(3)
    a = np.maximum(rng.standard_normal((3, 17)), 0).astype(np.float32)
    w = rng.standard_normal((17, 11)).astype(np.float32)
    y = (a.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    assert check.compare("sparse_matmul", (a, w), y).ok
    y[1, 4] += 1.0
    bad = check.compare("sparse_matmul", (a, w), y)
    assert not bad.ok and "worst error" in bad.message
