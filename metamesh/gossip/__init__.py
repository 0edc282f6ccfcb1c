"""Gossip: how knowledge moves between peers.

Pure logic (values in, values out; time passed in):

- ``membership``: peer liveness, alive -> suspect -> dead, with rejoin hysteresis
- ``hysteresis``: domain membership as a Schmitt trigger
- ``mesh``: the per-domain mesh degree band with prune backoff (gossipsub-style)
- ``dedup``: per-sender replay windows (exactly-once delivery and relay)
- ``merge``: merge rules for weight deltas — FedAvg, trimmed mean, coordinate
  median, Krum and norm screening (a Q-table's merge is its learner's: see
  ``metamesh.learners.prompts.qlearning``)

Adapters to the network:

- ``transport``: the ``Transport`` interface and its ZeroMQ implementation
- ``memory``: the in-memory twin (one event loop, seeded drops, delays, duplicates, partitions)
- ``sockets``: the one socket factory (CurveZMQ and ZAP in one place, HWMs, ``MAXMSGSIZE``)
- ``receive``: the receive loops, and a SUB's links changed only between whole messages
- ``meshing``: a node's meshes (one per domain and ``_global``) as one link set
- ``keys``: CurveZMQ keypairs and allowlists on disk
- ``beacon``: UDP beacon discovery on a LAN
"""
