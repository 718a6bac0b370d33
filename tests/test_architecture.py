"""The architecture check of `make lint` (import-linter, contracts in pyproject.toml) holds on the
tree and can fail: an upward import planted in a copy of the tree, and a circle, are caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is in the dev extra (make lint)")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in ("bench", "kernels"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def _planted(copy: Path, *plants: tuple[str, str]):
    """lint-imports on the copy with each (file, import line) added; the files restored after."""
    originals = {path: (copy / path).read_text() for path, _ in plants}
    for path, line in plants:
        (copy / path).write_text((copy / path).read_text() + f"\n{line}\n")
    try:
        return _lint(copy)
    finally:
        for path, text in originals.items():
            (copy / path).write_text(text)


def test_the_tree_keeps_every_contract(copy):
    r = _lint(copy)
    assert r.returncode == 0, r.stdout[-3000:]


def test_an_upward_import_is_caught(copy):
    r = _planted(copy, ("bench/model/display.py", "import bench.report.tables  # noqa"))
    assert r.returncode != 0 and "bench.model is not allowed to import bench.report" in r.stdout


def test_a_circle_within_a_folder_is_caught(copy):
    """Two modules of one folder (one layer, so the layers contract allows either import alone)."""
    alone = _planted(copy, ("bench/report/summary.py", "import bench.report.listing  # noqa"))
    assert alone.returncode == 0, alone.stdout[-2000:]
    r = _planted(copy, ("bench/report/summary.py", "import bench.report.listing  # noqa"),
                 ("bench/report/listing.py", "import bench.report.summary  # noqa"))
    assert r.returncode != 0 and "No cycles are allowed in bench.report" in r.stdout


def test_kernels_never_import_bench(copy):
    r = _planted(copy, ("kernels/machine.py", "import bench.model.results  # noqa"))
    assert r.returncode != 0 and "kernels never imports bench" in r.stdout
