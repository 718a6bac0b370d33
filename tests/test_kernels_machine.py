"""kernels/machine.py: cache sizes read from a sysfs-shaped folder, and the fallbacks."""

from __future__ import annotations

from kernels import machine


def _cache(tmp_path, index: int, level: int, kind: str, size: str) -> None:
    d = tmp_path / f"index{index}"
    d.mkdir()
    (d / "level").write_text(f"{level}\n")
    (d / "type").write_text(f"{kind}\n")
    (d / "size").write_text(f"{size}\n")


def test_cache_sizes_by_name_and_the_largest(tmp_path):
    _cache(tmp_path, 0, 1, "Data", "48K")
    _cache(tmp_path, 1, 1, "Instruction", "32K")
    _cache(tmp_path, 2, 2, "Unified", "1024K")
    _cache(tmp_path, 3, 3, "Unified", "32M")
    assert machine.cache_sizes(tmp_path) == {"L1d": 48 * 2**10, "L1i": 32 * 2**10, "L2": 2**20, "L3": 32 * 2**20}
    assert machine.last_level_cache_bytes(tmp_path) == 32 * 2**20


def test_unreadable_entries_are_skipped_and_nothing_means_the_default(tmp_path):
    assert machine.last_level_cache_bytes(tmp_path) == machine.DEFAULT_LLC_BYTES
    _cache(tmp_path, 0, 2, "Unified", "garbage")
    (tmp_path / "index1").mkdir()                      # no files at all
    _cache(tmp_path, 2, 1, "Data", "512")              # plain bytes, no unit
    assert machine.cache_sizes(tmp_path) == {"L1d": 512}


def test_cpu_facts_are_never_empty():
    assert machine.cpu_model()
    assert machine.cpu_count() >= 1
