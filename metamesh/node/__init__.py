"""The node runtime: lifecycle, config, state on disk, the learner interface.

- ``runtime``: the ``Node`` (sockets, membership, meshes, relay, snapshots)
- ``config`` and ``settings``: typed config with named profiles, one name per setting
- ``state``, ``homelock``, ``eventfiles``: identity, checkpoints, the home's lock, the event log
- ``meshing``, ``counters``, ``metrics``, ``client``, ``reachability``: parts the runtime uses
- ``learner``: the interface every learner (in ``metamesh.learners``) implements
"""
