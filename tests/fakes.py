"""Fake peak probes for tests of the run flow: the real probes copy 2 GiB and sweep the caches,
while these tests only need numbers. `patch_peaks(monkeypatch, ...)` installs both."""

from __future__ import annotations

from bench.measure import roofline


def patch_peaks(monkeypatch, gbps: float = 10.0, cache_gbps: float = 100.0, applies_below: int = 2**13) -> None:
    """Replace the CPU memory and cache peak probes by constants; the cache peak judges cases
    whose working set is under `applies_below` bytes."""
    def memory(sampling, *a, **k):
        return {"gbps": gbps, "method": "fake copy", "bytes": 2, "median_s": 1e-9, "samples_s": [1e-9],
                "measured": [{"method": "fake copy", "median_s": 1e-9, "gbps": gbps}]}

    def cache(sampling, *a, **k):
        return {"gbps": cache_gbps, "method": "fake cache copy", "bytes": 2, "median_s": 1e-9,
                "samples_s": [1e-9], "measured": [], "working_set_bytes": 2**12, "sweep": [],
                "applies_below_bytes": applies_below}

    monkeypatch.setattr(roofline, "cpu_copy_peak", memory)
    monkeypatch.setattr(roofline, "cpu_cache_peak", cache)


def interrupt_on_call(monkeypatch, module, name: str, n: int = 3) -> None:
    """Make the n-th call of module.name raise KeyboardInterrupt (Ctrl-C), the earlier ones run."""
    real, calls = getattr(module, name), []

    def wrapped(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(module, name, wrapped)
