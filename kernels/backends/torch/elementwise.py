"""Optional peer: PyTorch's own kernels (CUDA when torch sees a GPU, else CPU), when torch is installed.

These are the kernels to beat: each op calls the function PyTorch itself runs in a forward or
backward pass (torch.relu, torch.sigmoid, the aten *_backward ops), writing into `out` where
PyTorch can. relu_mask and relu_grad_mask are left out (the record's `omitted` says why): torch has
no packed-mask kernel, and a composition of torch ops would not be torch at its best. torch is
imported on first use, never at `import kernels` (it takes seconds).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from kernels.registry import Available, Backend, declare_backend, register

torch = None


def _probe() -> Available | str:
    global torch
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install -e '.[torch]')"
    import torch as _torch
    torch = _torch
    if torch.cuda.is_available():
        return Available(device="gpu", description=f"torch {torch.__version__} CUDA ({torch.cuda.get_device_name()})")
    return Available(device="cpu", description=f"torch {torch.__version__} CPU, {torch.get_num_threads()} threads")


def _dev() -> str:
    return "cuda" if _backend.device == "gpu" else "cpu"


def _is_native(a) -> bool:
    return torch is not None and isinstance(a, torch.Tensor)


def _synchronize() -> None:
    if _backend.device == "gpu":
        torch.cuda.synchronize()


_backend = declare_backend(Backend(
    name="torch",
    library="torch",
    default_device="cpu",            # the probe says "gpu" where torch sees a CUDA device
    probe=_probe,
    to_native=lambda a: torch.from_numpy(np.array(a, copy=True)).to(_dev()),
    to_numpy=lambda a: a.detach().cpu().numpy().copy(),
    is_native=_is_native,
    empty=lambda shape, dtype: torch.empty(shape, dtype=getattr(torch, dtype), device=_dev()),
    dtypes=("float16", "float32", "float64"),
    synchronize=_synchronize,
    contiguous=lambda a: a.contiguous(),
    omitted={
        **dict.fromkeys(("relu_mask", "relu_grad_mask"),
                        "torch has no packed-mask kernel, and a composition of torch ops is no peer"),
        # torch's own forward kernels fail the gate: a composition of torch ops would be no peer
        "silu": "torch's silu is x / (1 + exp(-x)): 0 where exp(-x) overflows (x < -88.7 in float32), where "
                "silu is a normal number (-2e-37 at x = -89): fails the gate",
        "gelu": "torch's tanh GELU computes 1 + tanh(u), which cancels for x < -3 (30 % off at x = -5 in "
                "float32, 1e-9 in float64): fails the gate",
    },
))


@register("relu", "torch")
def relu(x, out=None):
    # torch.relu is clamp_min(x, 0) inside PyTorch; clamp_min can write in place, relu cannot.
    return torch.relu(x) if out is None else torch.clamp_min(x, 0, out=out)


@register("sigmoid", "torch")
def sigmoid(x, out=None):
    return torch.sigmoid(x, out=out)


@register("tanh", "torch")
def tanh(x, out=None):
    return torch.tanh(x, out=out)


# The ops PyTorch runs as one aten function: (function, the keyword its out= overload writes into,
# arguments after the op's arrays and params, or a dict of keyword arguments). threshold_backward(dy, x, 0) is relu's backward
# (dy unless x <= 0); leaky_relu_backward's False: x is the forward input, not the output.
_ATEN = {
    "relu_grad": ("threshold_backward", "grad_input", (0,)),
    "sigmoid_grad": ("sigmoid_backward", "grad_input", ()),
    "tanh_grad": ("tanh_backward", "grad_input", ()),
    "leaky_relu": ("leaky_relu", "out", ()),
    "leaky_relu_grad": ("leaky_relu_backward", "grad_input", (False,)),
    "silu_grad": ("silu_backward", "grad_input", ()),
    "gelu_grad": ("gelu_backward", "grad_input", {"approximate": "tanh"}),
}


def _aten_launcher(function: str, out_keyword: str, tail: tuple):
    """aten.<function>(*arrays, *params, *tail), or its out= overload (named as the keyword it
    writes into) when out is given. Params arrive in OPS order, which is aten's order too."""
    keywords = tail if isinstance(tail, dict) else {}
    tail = () if keywords else tail

    def launch(*arrays, out=None, **params):
        fn = getattr(torch.ops.aten, function)
        args = (*arrays, *params.values(), *tail)
        if out is None:
            return fn(*args, **keywords)
        return getattr(fn, out_keyword)(*args, **keywords, **{out_keyword: out})
    launch.__name__ = launch.__qualname__ = function
    return launch


for _op, (_function, _keyword, _tail) in _ATEN.items():
    register(_op, "torch")(_aten_launcher(_function, _keyword, _tail))


@register("sparse_matmul", "torch")
def sparse_matmul(a, w, out=None):
    # the dense peer: torch.matmul (MKL/oneDNN on CPU, cuBLAS on CUDA), IEEE a @ w. A vector times
    # a matrix into out= is computed as 1 x K @ K x N, which resizes a 1-D out (deprecated): give
    # it the 1 x N view it expects
    if out is not None and a.dim() == 1:
        torch.matmul(a.unsqueeze(0), w, out=out.unsqueeze(0))
        return out
    return torch.matmul(a, w, out=out)
