"""The command line, at the top: `python -m bench` (main.py: list, run, report, compare, ab,
claims), the regression gate's baseline and check (check.py) and the GPU machine's one script
(gpu_check.py).
"""
