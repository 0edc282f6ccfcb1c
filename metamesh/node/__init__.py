"""The node runtime: lifecycle, config, state on disk, learners, LLM backends.

- ``runtime``: the ``Node`` (sockets, membership, meshes, relay, snapshots)
- ``config``: typed config with named profiles; ``state``: identity, checkpoints, event log
- ``meshing``, ``counters``, ``metrics``, ``client``: parts the runtime uses
- ``learner``: the learner interface; ``factory``: builds the one a config names
- ``prompts``: the prompt-strategy learner (seed 000); ``llm``: LLM backends
- ``experts``: the torch experts learner (seeds 001, 002); imports torch lazily
"""
