"""Merge rules, one per kind of shared knowledge; pure functions over numpy values.

* ``qtable`` -- Q-tables: visit-weighted average per (state, action), and
  :class:`PeerTables`, which keeps own + latest-per-peer tables so no visit
  is counted twice.
* ``delta`` -- weight deltas: FedAvg with a staleness discount, trimmed mean,
  coordinate median, (multi-)Krum, a norm bound and a finiteness check, and
  :func:`aggregate` in front of them.
"""

from __future__ import annotations

from metamesh.gossip.merge.delta import (
    Aggregate,
    Update,
    aggregate,
    coordinate_median,
    fedavg,
    finite,
    krum,
    norm_bound,
    trimmed_mean,
)
from metamesh.gossip.merge.qtable import PeerTables, QTableValue, merge_qtables

__all__ = [
    "Aggregate",
    "PeerTables",
    "QTableValue",
    "Update",
    "aggregate",
    "coordinate_median",
    "fedavg",
    "finite",
    "krum",
    "merge_qtables",
    "norm_bound",
    "trimmed_mean",
]
