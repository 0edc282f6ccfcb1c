"""Studies: node processes on localhost, arms over seeds, live progress, results and plots.

- ``prompts``: the prompt-strategy study (seed 000) and the demo's core
- ``experts``: the experts study (seeds 001, 002)
- ``evolve``: prompt evolution and the drift drill (seed 003)
- ``braid``: the meta-braider study (seed 004)
- ``report``: tables rebuilt from event logs alone; ``progress``: the live progress line
- ``outdir``: output folders that are never someone else's files
"""
