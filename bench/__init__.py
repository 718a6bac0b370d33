"""actbench's harness: HOW kernels are measured and shown.

The flow of one run, left to right: cases -> inputs -> kernels.get -> check -> timing -> roofline
-> results -> tables / markdown / plots. `python -m bench --help` lists the commands.
"""
