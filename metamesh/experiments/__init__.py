"""Studies: node processes on localhost, arms over seeds, live progress, results and plots.

- ``harness``: what every study shares -- arms in order, launching and polling each arm's
  nodes, stopping them for sure, failures with the node's log, results.json
- ``events``: the event-log lines the studies read, as typed records
- ``prompts``: the prompt-strategy study (seed 000) and the demo's core
- ``experts``: the experts study (seeds 001, 002)
- ``evolve``: prompt evolution and the drift drill (seed 003)
- ``braid``: the meta-braider study (seed 004)
- ``report``: tables rebuilt from event logs alone; ``progress``: the live progress line
- ``outdir``: output folders that are never someone else's files; ``plots``: matplotlib, if installed
"""
