"""Reading runs against each other: the verdict per case (compare.py), the history and the
baseline of one machine (history.py), base and head side by side (ab.py), the ULP accuracy sweep
(accuracy.py) and pytest-benchmark's saved runs (pytest_saved.py).
"""
