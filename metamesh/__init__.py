"""metamesh: a peer-to-peer network of learning agents.

Nodes learn on their own data and share only compact knowledge (insights,
Q-tables, weight deltas, prompts) with the peers of their domains over
ZeroMQ. This is the library surface (docs/library.md shows it at work):

- :class:`Node`, :class:`NodeConfig`, :func:`load_config`, :func:`run_node`:
  run a node (``async with Node(config) as node``, or ``await run_node(config)``)
- :class:`Learner`: the contract a learner implements; learners register by
  name in the ``metamesh.learners`` entry-point group
- :class:`Body` and the kinds a learner shares and merges: :class:`Insight`,
  :class:`QTable`, :class:`Delta`, :class:`Prompt`, and :class:`Meta` from a
  coordinator; :data:`GLOBAL_DOMAIN`, the domain every node is in
- :class:`MetameshError`, :class:`ConfigError`: the root of every error
  metamesh raises, and the one for a bad setting
- :class:`MemoryNetwork`, :class:`Faults`: the in-memory twin of the transport, for
  many nodes in one process (``Node(config, transport=network.transport())``)

Importing this package is cheap and never imports torch: each name loads
its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metamesh.errors import ConfigError, MetameshError
    from metamesh.gossip.memory import Faults, MemoryNetwork
    from metamesh.node.config import NodeConfig, load_config
    from metamesh.node.learner import Learner
    from metamesh.node.run import run_node
    from metamesh.node.runtime import Node
    from metamesh.protocol import GLOBAL_DOMAIN, Body, Delta, Insight, Meta, Prompt, QTable

__all__ = [
    "GLOBAL_DOMAIN",
    "Body",
    "ConfigError",
    "Delta",
    "Faults",
    "Insight",
    "Learner",
    "MemoryNetwork",
    "Meta",
    "MetameshError",
    "Node",
    "NodeConfig",
    "Prompt",
    "QTable",
    "__version__",
    "load_config",
    "run_node",
]

__version__ = "0.1.0"

_WHERE = {
    "ConfigError": "metamesh.errors",
    "MetameshError": "metamesh.errors",
    "MemoryNetwork": "metamesh.gossip.memory",
    "Faults": "metamesh.gossip.memory",
    "Node": "metamesh.node.runtime",
    "NodeConfig": "metamesh.node.config",
    "load_config": "metamesh.node.config",
    "Learner": "metamesh.node.learner",
    "run_node": "metamesh.node.run",
    **dict.fromkeys(
        ("GLOBAL_DOMAIN", "Body", "Delta", "Insight", "Meta", "Prompt", "QTable"), "metamesh.protocol"
    ),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
