"""numba.njit options shared by every numba_cpu module, and a cache that knows the package's files.

Kernels are cached on disk (`cache=True`). numba judges a cached function fresh by its own file
only, but a kernel here is assembled from several files (an op from kernels.py, its exp from
math.py, its driver from streaming.py): an edit to math.py alone would leave stale machine code in
the cache. The locators below, used for this package's files only, stamp every entry with the
contents of all of the package's sources, so that any edit recompiles.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from functools import lru_cache
from pathlib import Path

import numba.core.caching as _caching
from llvmlite import binding as llvm

try:
    import fcntl
except ImportError:                  # not POSIX: numba's own save, unlocked
    fcntl = None

X86_64 = llvm.get_process_triple().split("-")[0] in ("x86_64", "amd64")

# error_model="numpy": a division never checks for zero (a branch that stops vectorisation).
# No fast-math flag but `contract` (fused multiply-add): NaN and inf keep their IEEE meaning.
DEVICE = dict(cache=True, error_model="numpy", fastmath={"contract"})
PARALLEL = dict(DEVICE, parallel=True)

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=8)
def _package_stamp(stats: tuple) -> bytes:
    h = hashlib.sha256()
    for path, _mtime, _size in stats:
        h.update(Path(path).read_bytes())
    return h.digest()


def source_stamp() -> str:
    """A hash of the package's sources, in hex: numba's cache stamps its entries with it, and the
    store strategy's cache keys its measurements by it too, since a kernel that changed may want
    a different choice (a faster tanh, an earlier split between serial and parallel)."""
    files = sorted(_HERE.glob("*.py"))
    return _package_stamp(tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)).hex()


class _PackageStamp:
    """A locator mixin: applies to this package's files only, stamped with all of them."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != _HERE:
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return source_stamp()


def _numba_locator(*names):
    """numba's locator class under its current or its older (underscored) name."""
    return next(getattr(_caching, n) for n in names if hasattr(_caching, n))


def _install_locators() -> None:
    impl = _numba_locator("CacheImpl", "_CacheImpl")
    ours = [type(f"_Package{base.__name__.lstrip('_')}", (_PackageStamp, base), {})
            for base in (_numba_locator("UserProvidedCacheLocator", "_UserProvidedCacheLocator"),
                         _numba_locator("InTreeCacheLocator", "_InTreeCacheLocator"),
                         _numba_locator("UserWideCacheLocator", "_UserWideCacheLocator"))]
    if not any(issubclass(c, _PackageStamp) for c in impl._locator_classes):
        impl._locator_classes[:0] = ours


def _ours(cache_path: str) -> bool:
    """Whether a numba cache folder holds this package's entries: in-tree (its __pycache__), or a
    user-wide or NUMBA_CACHE_DIR folder, which mirror the package's path."""
    return Path(*_HERE.parts[-3:]).as_posix() in Path(cache_path).as_posix()


@contextlib.contextmanager
def locked(path: str):
    """An exclusive lock on `path` (created if missing) for the block; none where flock is not."""
    if fcntl is None:
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _locked_save(self, key, data):
    """numba's IndexDataCacheFile.save, for this package's entries: the index read, a free data
    name taken, the data written and then the index, all under the index's lock."""
    if not _ours(self._cache_path):
        return _numba_save(self, key, data)
    with locked(self._index_path + ".lock"):
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            taken = set(overloads.values())
            name = next(n for n in map(self._data_name, itertools.count(1)) if n not in taken)
        self._save_data(name, data)          # before the index names it: a reader never meets half an entry
        overloads[key] = name
        self._save_index(overloads)


_numba_save = _caching.IndexDataCacheFile.save


def _install_locked_save() -> None:
    if _caching.IndexDataCacheFile.save is not _locked_save:
        _caching.IndexDataCacheFile.save = _locked_save


_install_locators()
_install_locked_save()
