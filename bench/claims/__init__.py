"""The claims report: what ReLU's advantages over sigmoid measure on this hardware.

`python -m bench claims [--quick]` runs one experiment per claim (experiments.py), judges each by
a rule written in code (rules.py), and shows and writes the result (report.py, plots.py). The
networks are the project's kernels with BLAS matmuls (nets.py); times come from bench/measure/timing.py
(measure.py). catalog.CLAIMS ties each claim to its experiment, rule and plot.

Importing this package imports nothing else: `python -m bench` builds its command line from
cli.py on machines without matplotlib or threadpoolctl (a GPU machine running gpu_check).
"""
