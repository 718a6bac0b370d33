"""A pytest plugin for `make mutate` only (setup.cfg's [mutmut] pytest_add_cli_args loads it; make
test never does): each mutant's tests run fastest first.

mutmut hands a mutant its tests in the order of a Python set and stops at the first failure (-x),
so a mutant that a 5 ms test kills could first sit through a one-second end-to-end run. The
durations are the ones mutmut measured in its stats run (mutants/mutmut-stats.json, read from the
current directory, which is mutants/ while mutmut runs pytest).
"""

from __future__ import annotations

import json
from pathlib import Path


def pytest_collection_modifyitems(items):
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return  # mutmut's own stats run, before any duration is known: its order does not matter
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
