"""Input generators: random inputs of any shape, the special values, and the inputs of each op.

Every generator returns NumPy arrays of the requested dtype, one per array argument of the op, in
call order (see kernels.ops.OPS). Gradient ops get a random dy; those that take the forward
output (sigmoid_grad, tanh_grad) get y = forward(x) computed in the dtype, the values they see in a
real backward pass; relu_grad_mask gets the packed mask of a random x. `Moved` keeps the host
inputs' copies in each backend's array library.
"""

from __future__ import annotations

import numpy as np

from kernels.ops import OPS, pack_mask, reference

# +-0, +-inf, NaN, huge (+-1e38), subnormal in float32 (+-1e-40), and the edge of exp's range in
# float32 (exp(88) is finite, exp(89) overflows).
SPECIAL_VALUES = (0.0, -0.0, np.inf, -np.inf, np.nan, 1e38, -1e38, 1e-40, -1e-40, 88.0, -88.0, 89.0, -89.0)

SCALES = (1.0, 10.0, 100.0)


def special_array(dtype, repeat: int = 1) -> np.ndarray:
    """The special values cast to `dtype` (1e38 is inf in float16), repeated so vector paths see them."""
    with np.errstate(over="ignore", under="ignore"):
        return np.tile(np.array(SPECIAL_VALUES, dtype=np.float64), repeat).astype(dtype)


def random_array(shape, dtype, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Standard normal values times `scale`, drawn in float32 (float64 for float64): fast at 2**27."""
    draw = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    a = rng.standard_normal(shape, dtype=draw)
    if scale != 1.0:
        a *= scale
    with np.errstate(over="ignore"):
        return a.astype(dtype, copy=False)


def forward_output(op: str, x: np.ndarray) -> np.ndarray:
    """What the forward op gives for x, computed in x's dtype (a realistic y; not the oracle)."""
    with np.errstate(all="ignore"):
        if op == "tanh":
            y = np.tanh(x)
        elif op == "sigmoid":
            y = 1 / (1 + np.exp(-x))
        else:
            y = reference(op)(x)
    return np.asarray(y, dtype=x.dtype)           # an array even for 0-d x


def op_inputs(op: str, x: np.ndarray, rng: np.random.Generator, dy: np.ndarray | None = None,
              y: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The arrays `op` takes, built around x (the forward input). dy, and y for ops that take the
    forward output, are random / derived unless given. Arrays are reused, not copied."""
    spec = OPS[op]
    if not spec.grad:
        return (x,)
    if dy is None:
        dy = random_array(x.shape, x.dtype, rng)
    if spec.mask_input:
        return dy, pack_mask(x)
    if spec.grad_of_output:
        if y is None:
            y = forward_output(spec.forward, x)
        return dy, y
    return dy, x


def random_inputs(op: str, shape, dtype, rng: np.random.Generator, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Random normal inputs (x scaled by `scale`) for op."""
    return op_inputs(op, random_array(shape, dtype, rng, scale), rng)


def special_inputs(op: str, dtype, rng: np.random.Generator) -> list[tuple[str, tuple[np.ndarray, ...]]]:
    """Labelled input sets that put the special values in each array argument in turn.

    Each special value meets an ordinary value in the other arguments (or itself, in the 'all'
    set); specials are not crossed with each other, where float32 intermediates such as y * y in
    tanh_grad overflow while the float64 reference does not, and no kernel could agree.
    """
    spec = OPS[op]
    s = special_array(dtype, repeat=5)            # long enough for a vector body and a scalar tail
    sets = [("x special", op_inputs(op, s, rng))]
    if spec.grad:
        sets.append(("dy special", op_inputs(op, random_array(s.shape, dtype, rng), rng, dy=s)))
        if spec.grad_of_output:
            sets.append(("y special", op_inputs(op, random_array(s.shape, dtype, rng), rng, y=s)))
        if not spec.mask_input:
            sets.append(("all special", (s, s)))
    return sets


class Moved:
    """Host arrays moved to backends' array libraries, each moved once per library (the three CuPy
    backends share one copy on the device; host backends move nothing). Keyed by the host array's
    identity: the caller keeps the host arrays alive while their copies are used."""

    def __init__(self):
        self._native: dict[tuple[str, int], object] = {}

    def on(self, be, arrays) -> list:
        """`arrays` as arrays of backend `be` (a kernels.registry.Backend)."""
        out = []
        for a in arrays:
            key = (be.library, id(a))
            if key not in self._native:
                self._native[key] = be.to_native(a)
            out.append(self._native[key])
        return out

    def clear(self) -> None:
        self._native.clear()
