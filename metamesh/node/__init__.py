"""The node runtime: a small ``Node`` facade over parts of one concern each.

- ``runtime``: ``Node``, the facade (also ``metamesh.node.Node``), and its lifecycle
- ``core``: what the parts share (config, identity, transport, counters, events, tasks)
- ``pipeline``: decode → validate → dedup → verify → learner validate → merge → relay
- ``peers``, ``grafting``: peers and membership; meshes by graft and prune, domains
- ``timers``: heartbeats and what runs with them, greeting seeds
- ``rpc``, ``snapshots``: direct requests and their answers; latest state for late joiners
- ``checkpoints``, ``trust``, ``hosting``: the checkpoint; scores and quarantine; the learner host
- ``learner``: the ``Learner`` contract, every hook the node calls
- ``config``, ``settings``, ``sections``: typed config with named profiles, one name per setting
- ``state``, ``homelock``, ``eventfiles``: identity, checkpoints on disk, the home's lock, the event log
- ``counters``, ``metrics``, ``client``, ``reachability``: traffic counters, Prometheus, one-shot
  requests for tools, why a node cannot reach its network
- ``run``, ``registry``: ``run_node`` and the learner registry (entry points)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metamesh.node.runtime import Node

__all__ = ["Node"]


def __getattr__(name: str) -> Any:
    if name == "Node":  # on first use: importing the package stays cheap
        from metamesh.node.runtime import Node

        return Node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
