"""What one run keeps between its cases, and releases when it ends.

The correctness gate's poison buffers and input snapshots, the copy probe's threads, the device
adapters (their flush buffers and spin kernels) and the numba_cuda backend's compiled kernels are
worth keeping from one case to the next, but not beyond the run: `runner.run_cases` opens a
`RunScope` and closes it at the end, Ctrl-C and errors included. Nothing here is process-wide.
"""

from __future__ import annotations

from kernels.backends.numba_cuda import elementwise as numba_gpu

from bench.measure import check, devices, roofline


class RunScope:
    """The caches of one run; a context manager that drops them on exit."""

    def __init__(self):
        self.scratch = check.Scratch()
        self.pools = roofline.CopyPools()
        self._devices: dict[tuple[str, str], devices.HostAdapter] = {}

    def device(self, be) -> devices.HostAdapter:
        """The run's adapter for backend `be`'s array library on its device (one per library)."""
        key = (be.library, be.device)
        if key not in self._devices:
            self._devices[key] = devices.adapter_for(be)
        return self._devices[key]

    def release(self) -> None:
        """Give back the memory every library used so far keeps pooled (between sizes)."""
        for d in self._devices.values():
            d.release()

    def close(self) -> None:
        self.scratch.close()
        self.pools.close()
        for d in self._devices.values():
            d.close()
        self._devices.clear()
        # numba-cuda's kernels compiled in this run (and their occupancy): kernels.backends.numba_cuda.elementwise imports
        # numba-cuda only in its probe, so this imports nothing where numba-cuda is not installed
        numba_gpu.RUNTIME.close()

    def __enter__(self) -> RunScope:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
