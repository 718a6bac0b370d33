"""The data model, at the bottom: what a case is (cases.py), a run's results records, their JSON
schema and migration (results.py), the statistics of samples (stats.py) and the way numbers and
backends are written everywhere (display.py). Imports nothing else of bench.
"""
