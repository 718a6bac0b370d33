"""Measuring: clocks and the noise-based stopping rule (timing.py), round-robin sampling
(interleave.py), the machine's load and starved threads (load.py), peaks (roofline.py), the
correctness gate (check.py, inputs.py), device adapters and their scope (devices.py, scope.py), the
environment (environment.py), Ctrl-C and SIGTERM (signals.py), and the steps every case goes
through whatever its kind (case.py). Imports only bench.model below it.
"""
