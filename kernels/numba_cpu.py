"""Fused, parallel CPU kernels with numba.njit (placeholder: kernels land with the numba_cpu work)."""

from __future__ import annotations

import numpy as np

from .registry import Backend, declare_backend


def _probe() -> str | None:
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        return f"numba is not importable: {exc}"
    return None


declare_backend(Backend(
    name="numba_cpu",
    device="cpu",
    probe=_probe,
    to_native=lambda a: np.array(a, copy=True),
    to_numpy=lambda a: np.array(a, copy=True),
    is_native=lambda a: isinstance(a, np.ndarray),
    empty=lambda shape, dtype: np.empty(shape, dtype),
    contiguous=np.ascontiguousarray,
    description="fused, parallel numba.njit kernels",
))
