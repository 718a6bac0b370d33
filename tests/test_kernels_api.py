"""The public API of kernels/: get, ops, backends, asarray, asnumpy, and the errors a user sees.

Bad input is a clear exception: TypeError for a dtype (int, bool, complex, or one the backend lacks),
ValueError for a shape or mask size, LookupError naming the valid ops and backends.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import kernels
from bench.measure.check import check_call
from bench.measure.inputs import random_array, random_inputs, special_array
from kernels import registry
from kernels.ops import OPS

from .conftest import kernel_params

MATMUL_ONLY = ["scipy_csr", "cupyx_csr"]      # backends of sparse_matmul alone
CPU_BACKENDS = [b.name for b in kernels.all_backends() if b.device == "cpu" and b.available and b.name not in MATMUL_ONLY]
PUBLIC_OPS = ["relu", "relu_grad", "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "leaky_relu",
              "leaky_relu_grad", "silu", "silu_grad", "gelu", "gelu_grad", "relu_mask", "relu_grad_mask",
              "sparse_matmul"]
ELEMENTWISE = PUBLIC_OPS[:-1]
PUBLIC_BACKENDS = ["numpy", "numba_cpu", "cupy", "cupy_elementwise", "cupy_raw", "numba_cuda", "torch"]


def _an_op_of(backend: str) -> str:
    return next(k.op for k in registry.kernels() if k.backend == backend)


def test_ops_and_backends_are_the_public_ids():
    assert kernels.all_ops() == PUBLIC_OPS
    assert {b.name for b in kernels.all_backends()} == set(PUBLIC_BACKENDS + MATMUL_ONLY)
    for b in kernels.all_backends():
        assert b.device in ("cpu", "gpu")
        assert b.available or b.reason          # never unavailable without saying why


def test_every_backend_has_every_op_or_says_why_not():
    have = {(k.op, k.backend) for k in registry.kernels()}
    missing = [(op, b) for op in ELEMENTWISE for b in PUBLIC_BACKENDS
               if (op, b) not in have and not registry.backend(b).omitted.get(op)]
    missing += [("sparse_matmul", b) for b in PUBLIC_BACKENDS + MATMUL_ONLY
                if b != "cupy_elementwise" and ("sparse_matmul", b) not in have]
    assert not missing


def test_torch_leaves_out_the_mask_ops_and_says_why():
    """torch has no packed-mask kernel: no composition is timed in its place, and asking says why."""
    assert {"relu_mask", "relu_grad_mask"} <= set(registry.backend("torch").omitted)
    have = {(k.op, k.backend) for k in registry.kernels()}
    assert not {("relu_mask", "torch"), ("relu_grad_mask", "torch")} & have
    with pytest.raises(LookupError, match="no packed-mask kernel"):
        kernels.get("relu_mask", "torch")


def _aten_log(fn):
    """fn()'s result and the aten operators (overload packets) it dispatched, views left out."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view:
                ops.append(func.overloadpacket)
            return func(*args, **(kwargs or {}))
    ops: list = []
    with Log():
        out = fn()
    return out, ops


@pytest.mark.skipif(not registry.backend("torch").available, reason="torch is not installed here")
@pytest.mark.parametrize("op", ["relu_grad", "sigmoid_grad", "tanh_grad", "leaky_relu_grad", "silu_grad", "gelu_grad"])
def test_torch_runs_its_own_backward_kernels(op, rng):
    """The peer at its best: each gradient, checked or timed (out=), dispatches exactly the aten
    operator PyTorch's autograd runs for the forward function, once, and gives autograd's gradient
    bit for bit, special values of x included (a composition such as dy * (x > 0) differs there)."""
    import torch
    spec = OPS[op]
    slope = spec.params.get("slope")
    forward = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
               "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, slope),
               "silu": torch.nn.functional.silu,
               "gelu": lambda t: torch.nn.functional.gelu(t, approximate="tanh")}[spec.forward]
    x = torch.from_numpy(np.concatenate([special_array("float32", 3), random_array(4000, "float32", rng, 10.0)]))
    dy = torch.from_numpy(random_array(x.shape, "float32", rng))
    x.requires_grad_()
    y = forward(x)
    (want,), autograd_ops = _aten_log(lambda: torch.autograd.grad(y, x, dy))
    assert len(autograd_ops) == 1
    args = (dy, (y if spec.grad_of_output else x).detach())
    fn, kwargs = registry.timed_call(op, "torch", args)
    for call in (lambda: kernels.get(op, "torch")(*args), lambda: fn(*args, **kwargs)):
        got, ops = _aten_log(call)
        assert ops == autograd_ops
        g, w = got.numpy(), want.numpy()
        same = (g.view(np.uint32) == w.view(np.uint32)) | (np.isnan(g) & np.isnan(w))
        assert same.all(), f"x = {x.detach().numpy()[~same][:5]}"


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(LookupError, match="valid ops: relu, relu_grad"):
        kernels.get("swish", "numpy")
    with pytest.raises(LookupError, match="valid backends: numpy"):
        kernels.get("relu", "jax")
    with pytest.raises(LookupError):
        kernels.asarray("jax", np.zeros(3))


@pytest.fixture
def scratch_backends(monkeypatch):
    """Declare throw-away backends for one test (the registry is restored afterwards): the checks
    they exercise live in the registry, so they run on every machine, whatever backends it has."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))
    declared = []

    def declare(name, **changes):
        be = registry.declare_backend(dataclasses.replace(registry.backend("numpy"), name=name, **changes))
        registry.register("relu", name)(lambda x, out=None: np.maximum(x, 0, out=out))
        declared.append(name)
        return be
    yield declare
    registry.forget_states(*declared)


def test_unavailable_backend_says_why(scratch_backends):
    scratch_backends("gone", probe=lambda: "its library is not installed")
    gone = [b for b in kernels.all_backends() if not b.available]
    assert "gone" in {b.name for b in gone}
    for b in gone:
        with pytest.raises(RuntimeError, match=f"backend {b.name!r} is not available here: .*{re.escape(b.reason)}"):
            kernels.get(_an_op_of(b.name), b.name)
        with pytest.raises(RuntimeError, match="not available here"):
            kernels.asarray(b.name, np.zeros(3))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("bad", ["int32", "int64", "bool", "complex64"])
def test_non_float_dtypes_are_type_errors(backend, bad):
    x = kernels.asarray(backend, np.ones(8, dtype=bad))
    for op, spec in OPS.items():
        if op in registry.backend(backend).omitted:
            continue
        fn = kernels.get(op, backend)
        args = [x] * spec.n_inputs
        if spec.mask_input:
            args[1] = kernels.asarray(backend, np.zeros(1, dtype=np.uint8))
        with pytest.raises(TypeError, match="floating-point"):
            fn(*args)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_shape_mismatch_is_a_value_error(backend):
    a = kernels.asarray(backend, np.ones(8, dtype=np.float32))
    b = kernels.asarray(backend, np.ones(9, dtype=np.float32))
    for op in ("relu_grad", "sigmoid_grad", "tanh_grad", "leaky_relu_grad"):
        with pytest.raises(ValueError, match="same shape"):
            kernels.get(op, backend)(a, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_mixed_dtypes_and_bad_masks(backend):
    f32 = kernels.asarray(backend, np.ones(9, dtype=np.float32))
    f64 = kernels.asarray(backend, np.ones(9, dtype=np.float64))
    with pytest.raises(TypeError, match="same dtype"):
        kernels.get("relu_grad", backend)(f32, f64)
    if "relu_grad_mask" in registry.backend(backend).omitted:
        return
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        kernels.get("relu_grad_mask", backend)(f32, kernels.asarray(backend, np.zeros(1, dtype=np.uint8)))
    with pytest.raises(TypeError, match="uint8"):
        kernels.get("relu_grad_mask", backend)(f32, kernels.asarray(backend, np.zeros(2, dtype=np.int8)))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_out_is_checked(backend):
    relu = kernels.get("relu", backend)
    on = lambda a: kernels.asarray(backend, a)     # noqa: E731
    x = on(np.ones(8, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        relu(x, out=on(np.empty(9, dtype=np.float32)))
    with pytest.raises(ValueError, match="float32"):
        relu(x, out=on(np.empty(8, dtype=np.float64)))
    with pytest.raises(ValueError, match="overlap"):
        relu(x, out=x)
    with pytest.raises(ValueError, match="contiguous"):
        relu(x, out=on(np.empty(16, dtype=np.float32))[::2])


def test_unsupported_float16_is_a_type_error(scratch_backends):
    scratch_backends("no_half", dtypes=("float32", "float64"))
    lacking = [b for b in kernels.all_backends() if b.available and "float16" not in b.dtypes]
    assert "no_half" in {b.name for b in lacking}
    for b in lacking:
        x = kernels.asarray(b.name, np.ones(4, dtype=np.float16))
        op = _an_op_of(b.name)
        with pytest.raises(TypeError, match=f"{b.name} does not support float16"):
            kernels.get(op, b.name)(*[x] * registry.spec_of(op).n_inputs)


def test_wrong_array_kind_is_a_type_error(scratch_backends):
    """A NumPy array handed to a backend of another array library."""
    scratch_backends("only_lists", library="lists", is_native=lambda a: isinstance(a, list))
    foreign = [b for b in kernels.all_backends() if b.available and b.library != "numpy"]
    assert "only_lists" in {b.name for b in foreign}
    for b in foreign:
        op = _an_op_of(b.name)
        with pytest.raises(TypeError, match=f"must be an array of the {b.name} backend.*kernels.asarray"):
            kernels.get(op, b.name)(*[np.ones(4, dtype=np.float32)] * registry.spec_of(op).n_inputs)


def test_unknown_keyword_and_bad_slope():
    x = np.ones(4, dtype=np.float32)
    with pytest.raises(TypeError, match="unexpected keyword"):
        kernels.get("relu", "numpy")(x, slope=0.1)
    with pytest.raises(TypeError, match="finite real number"):
        kernels.get("leaky_relu", "numpy")(x, slope=float("nan"))


def test_asarray_asnumpy_round_trip():
    x = np.arange(5, dtype=np.float32)
    for b in kernels.all_backends():
        if b.available:
            back = kernels.asnumpy(kernels.asarray(b.name, x))
            assert isinstance(back, np.ndarray) and np.array_equal(back, x)


@pytest.mark.parametrize("op,backend", [p for p in kernel_params() if OPS[p.values[0]].params])
def test_slope_is_honoured(op, backend, rng):
    """A non-default slope changes the answer, and the kernel follows it."""
    args = random_inputs(op, (257,), "float32", rng, 10.0)
    assert check_call(op, backend, args, params={"slope": 0.3}).ok
    default = kernels.asnumpy(kernels.get(op, backend)(*[kernels.asarray(backend, a) for a in args]))
    steep = kernels.asnumpy(kernels.get(op, backend)(*[kernels.asarray(backend, a) for a in args], slope=0.3))
    assert not np.array_equal(default, steep)
