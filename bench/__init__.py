"""actbench's harness: HOW kernels are measured and shown, in layers that import only downward
(`make lint` checks it): model, measure, kinds, run, report, analysis and claims, cli.

The flow of one run, left to right: plan (cases) -> kind (inputs, kernels.get) -> check -> timing
-> roofline -> results -> tables / markdown / plots. `python -m bench --help` lists the commands.
"""
