"""Optional peer: PyTorch's own kernels (CUDA when torch sees a GPU, else CPU), when torch is installed.

These are the kernels to beat: each op calls the function PyTorch itself runs in a forward or
backward pass (torch.relu, torch.sigmoid, the aten *_backward ops), writing into `out` where
PyTorch can. torch is imported on first use, never at `import kernels` (it takes seconds).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from .registry import Backend, declare_backend, register

torch = None


def _probe() -> str | None:
    global torch
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install -e '.[torch]')"
    import torch as _torch
    torch = _torch
    if torch.cuda.is_available():
        _backend.device = "gpu"
        _backend.synchronize = torch.cuda.synchronize
        _backend.description = f"torch {torch.__version__} CUDA ({torch.cuda.get_device_name()})"
    else:
        _backend.description = f"torch {torch.__version__} CPU, {torch.get_num_threads()} threads"
    return None


def _dev() -> str:
    return "cuda" if _backend.device == "gpu" else "cpu"


def _is_native(a) -> bool:
    return torch is not None and isinstance(a, torch.Tensor)


_backend = declare_backend(Backend(
    name="torch",
    device="cpu",
    probe=_probe,
    to_native=lambda a: torch.from_numpy(np.array(a, copy=True)).to(_dev()),
    to_numpy=lambda a: a.detach().cpu().numpy().copy(),
    is_native=_is_native,
    empty=lambda shape, dtype: torch.empty(shape, dtype=getattr(torch, dtype), device=_dev()),
    dtypes=("float16", "float32", "float64"),
    contiguous=lambda a: a.contiguous(),
    description="PyTorch's own kernels",
))


def _aten():
    return torch.ops.aten


@register("relu", "torch")
def relu(x, out=None):
    # torch.relu is clamp_min(x, 0) inside PyTorch; clamp_min can write in place, relu cannot.
    return torch.relu(x) if out is None else torch.clamp_min(x, 0, out=out)


@register("relu_grad", "torch")
def relu_grad(dy, x, out=None):
    # Not aten.threshold_backward: it tests x <= 0 and so passes dy through where x is NaN; the
    # definition here is dy where x > 0. One fused where-kernel either way.
    zero = torch.zeros((), dtype=dy.dtype, device=dy.device)
    return torch.where(x > 0, dy, zero) if out is None else torch.where(x > 0, dy, zero, out=out)


@register("sigmoid", "torch")
def sigmoid(x, out=None):
    return torch.sigmoid(x, out=out)


@register("sigmoid_grad", "torch")
def sigmoid_grad(dy, y, out=None):
    return _aten().sigmoid_backward(dy, y) if out is None else _aten().sigmoid_backward.grad_input(dy, y, grad_input=out)


@register("tanh", "torch")
def tanh(x, out=None):
    return torch.tanh(x, out=out)


@register("tanh_grad", "torch")
def tanh_grad(dy, y, out=None):
    return _aten().tanh_backward(dy, y) if out is None else _aten().tanh_backward.grad_input(dy, y, grad_input=out)


@register("leaky_relu", "torch")
def leaky_relu(x, out=None, slope=0.01):
    return _aten().leaky_relu(x, slope) if out is None else _aten().leaky_relu.out(x, slope, out=out)


@register("leaky_relu_grad", "torch")
def leaky_relu_grad(dy, x, out=None, slope=0.01):
    if out is None:
        return _aten().leaky_relu_backward(dy, x, slope, False)
    return _aten().leaky_relu_backward.grad_input(dy, x, slope, False, grad_input=out)


def _pack(keep):
    """(keep) packed 1 bit per element, little bit order, on keep's device."""
    bits = keep.reshape(-1).to(torch.uint8)
    bits = torch.nn.functional.pad(bits, (0, (-bits.numel()) % 8)).reshape(-1, 8)
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=keep.device)
    return (bits * weights).sum(dim=1, dtype=torch.uint8)


def _unpack(mask, shape):
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=mask.device)
    n = int(np.prod(shape, dtype=np.int64))
    return ((mask.reshape(-1, 1) & weights) != 0).reshape(-1)[:n].reshape(shape)


@register("relu_mask", "torch", supports_out=False)
def relu_mask(x, out=None):
    # torch has no packed-bit mask: what a torch user would write (relu, then pack the bool mask).
    return torch.relu(x), _pack(x > 0)


@register("relu_grad_mask", "torch", supports_out=False)
def relu_grad_mask(dy, mask, out=None):
    zero = torch.zeros((), dtype=dy.dtype, device=dy.device)
    return torch.where(_unpack(mask, tuple(dy.shape)), dy, zero)
