"""The things that learn, one folder each, and how a node finds them by name.

- ``prompts``: the prompt-strategy Q-learner (seed 000)
- ``experts``: torch experts sharing insights and weight deltas (seeds 001, 002); imports torch lazily
- ``evolve``: prompt evolution (seed 003); ``monitor``: the closed-loop drift/alignment monitor
- ``braid``: the routing/braiding policy over a pool of LLMs (seed 004); needs torch
- ``optim``: the SGD and Adam the torch learners use; ``factory``: builds the learner a config names
- ``data``: the built-in question sets
"""
