"""Multi-layer perceptrons built from the project's kernels, for the claims experiments.

Every activation and its gradient is a `kernels.get(op, backend)` call; matrix products are the
array library's `@` (NumPy's BLAS on the CPU, cuBLAS through CuPy on a GPU backend). Which input a
gradient kernel takes (the forward input x, or the forward output y) comes from the op table
(`kernels.ops.OPS[...].grad_of_output`), not from a per-activation branch.

A network of depth L has L hidden layers, each `z = h @ W + b; h' = act(z)` (optionally with
`z` standardised over the batch first: batch norm without the affine part), then a linear output
layer. The loss is the mean squared error `0.5 * mean over the batch of |out - target|^2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import kernels
from kernels.ops import OPS

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
# The standard initialisation of each activation: Glorot/Xavier for the saturating ones (Glorot &
# Bengio 2010), He/Kaiming for the rectifiers (He et al. 2015).
STANDARD_INIT = {"sigmoid": "xavier", "tanh": "xavier", "relu": "he", "leaky_relu": "he"}
BN_EPS = 1e-5

# Backends a network may run on, best first: a GPU backend whose arrays are CuPy arrays (so `@` is
# cuBLAS), then the fused CPU kernels, then the NumPy baseline.
_NET_BACKENDS = ("cupy_raw", "cupy_elementwise", "cupy", "numba_cpu", "numpy")


def pick_backend(preferred: str | None = None) -> str:
    """The backend the networks run on: `preferred` if given, else the first available of
    _NET_BACKENDS that has every activation and gradient op."""
    names = [preferred] if preferred else list(_NET_BACKENDS)
    avail = {b.name for b in kernels.all_backends() if b.available and not b.simulated}
    for name in names:
        if name not in avail:
            continue
        try:
            for act in ACTIVATIONS:
                kernels.get(act, name)
                kernels.get(act + "_grad", name)
        except LookupError:
            continue
        return name
    raise RuntimeError(f"no backend runs every activation here (tried {', '.join(names)})")


def array_module(backend: str):
    """NumPy or CuPy: the module whose arrays `backend` takes."""
    native = kernels.asarray(backend, np.zeros(1, np.float32))
    if type(native).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


class Net:
    """An MLP's weights and its forward and backward passes on one backend."""

    def __init__(self, act: str, sizes: list[int], *, backend: str, dtype="float32", init: str | None = None,
                 gain: float = 1.0, bn: bool = False, seed: int = 0):
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}")
        self.act, self.backend, self.dtype, self.bn = act, backend, np.dtype(dtype), bn
        self.init = init or STANDARD_INIT[act]
        self.xp = array_module(backend)
        self._fwd = kernels.get(act, backend)
        self._grad = kernels.get(act + "_grad", backend)
        self._grad_of_output = OPS[act + "_grad"].grad_of_output
        rng = np.random.default_rng(seed)
        self.W, self.b = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            self.W.append(self._to(init_weights(rng, fan_in, fan_out, self.init, gain)))
            self.b.append(self._to(np.zeros(fan_out)))

    @property
    def depth(self) -> int:
        """Hidden layers (each followed by the activation); the output layer is linear."""
        return len(self.W) - 1

    def _to(self, a):
        return kernels.asarray(self.backend, np.ascontiguousarray(a, dtype=self.dtype))

    def asarray(self, a):
        return self._to(a)

    def forward(self, x):
        """Output and the cache the backward pass needs: per hidden layer (input h, pre-activation
        z, standardisation state, output)."""
        cache = []
        h = x
        for W, b in zip(self.W[:-1], self.b[:-1]):
            z = h @ W + b
            norm = None
            if self.bn:
                z, norm = _standardise(self.xp, z)
            y = self._fwd(z)
            cache.append((h, z, norm, y))
            h = y
        out = h @ self.W[-1] + self.b[-1]
        cache.append((h, None, None, out))
        return out, cache

    def backward(self, cache, dout):
        """Gradients of the loss for every weight and bias, and the gradient reaching each hidden
        layer's output (dh, first layer first)."""
        dW, db, dh = [None] * len(self.W), [None] * len(self.W), [None] * self.depth
        h_last = cache[-1][0]
        dW[-1] = h_last.T @ dout
        db[-1] = dout.sum(axis=0)
        g = dout @ self.W[-1].T
        for i in range(self.depth - 1, -1, -1):
            h, z, norm, y = cache[i]
            dh[i] = g
            dz = self._grad(g, y if self._grad_of_output else z)
            if norm is not None:
                dz = _standardise_backward(self.xp, dz, norm)
            dW[i] = h.T @ dz
            db[i] = dz.sum(axis=0)
            if i:
                g = dz @ self.W[i].T
        return dW, db, dh

    def loss_and_grads(self, x, target):
        out, cache = self.forward(x)
        diff = out - target
        n = x.shape[0]
        loss = 0.5 * float((diff * diff).sum()) / n
        dW, db, dh = self.backward(cache, diff / n)
        return loss, dW, db, dh, cache

    def sgd_step(self, dW, db, lr: float):
        for W, b, gW, gb in zip(self.W, self.b, dW, db):
            W -= lr * gW
            b -= lr * gb

    def hidden(self, x) -> list:
        """The hidden layers' outputs for input x (first layer first)."""
        _, cache = self.forward(x)
        return [c[3] for c in cache[:-1]]

    def pre_activations(self, x) -> list:
        _, cache = self.forward(x)
        return [c[1] for c in cache[:-1]]


def init_weights(rng: np.random.Generator, fan_in: int, fan_out: int, scheme: str, gain: float = 1.0) -> np.ndarray:
    """Gaussian weights of standard deviation gain * the scheme's: xavier sqrt(2 / (fan_in + fan_out)),
    he sqrt(2 / fan_in)."""
    if scheme == "xavier":
        std = math.sqrt(2.0 / (fan_in + fan_out))
    elif scheme == "he":
        std = math.sqrt(2.0 / fan_in)
    else:
        raise ValueError(f"unknown initialisation {scheme!r}; valid: xavier, he")
    return rng.standard_normal((fan_in, fan_out)) * (gain * std)


def _standardise(xp, z):
    """z standardised per unit over the batch (batch norm without scale and shift)."""
    mu = z.mean(axis=0)
    var = z.var(axis=0)
    inv = 1.0 / xp.sqrt(var + BN_EPS)
    zhat = (z - mu) * inv
    return zhat.astype(z.dtype, copy=False), (zhat, inv.astype(z.dtype, copy=False))


def _standardise_backward(xp, dzhat, norm):
    """The gradient through _standardise: inv * (dzhat - mean(dzhat) - zhat * mean(dzhat * zhat))."""
    zhat, inv = norm
    return inv * (dzhat - dzhat.mean(axis=0) - zhat * (dzhat * zhat).mean(axis=0))


@dataclass(frozen=True)
class Task:
    """A synthetic regression task: inputs N(0, I), targets from a fixed random teacher network
    (one tanh hidden layer), so that every student can fit it and a loss near 0 is reachable."""

    d_in: int = 32
    d_hidden: int = 64
    d_out: int = 4
    seed: int = 0

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        t = np.random.default_rng(self.seed)
        W1 = t.standard_normal((self.d_in, self.d_hidden)) / math.sqrt(self.d_in)
        W2 = t.standard_normal((self.d_hidden, self.d_out)) / math.sqrt(self.d_hidden)
        x = rng.standard_normal((n, self.d_in))
        return x, np.tanh(x @ W1) @ W2 * 2.0


def numeric_grad(net: Net, x, target, layer: int, idx: tuple[int, int], eps: float = 1e-6) -> float:
    """Central finite difference of the loss in one weight (a test helper: float64 networks)."""
    W = net.W[layer]
    old = float(W[idx])
    W[idx] = old + eps
    lp = net.loss_and_grads(x, target)[0]
    W[idx] = old - eps
    lm = net.loss_and_grads(x, target)[0]
    W[idx] = old
    return (lp - lm) / (2 * eps)
