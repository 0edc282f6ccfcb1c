"""metamesh: a peer-to-peer network of learning agents.

Nodes learn on their own data and share only compact knowledge (insights,
Q-tables, weight deltas) with the peers of their domains over ZeroMQ.
Importing this package is cheap and never imports torch.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
