"""Merge rules for weight deltas; pure functions over numpy values.

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

__all__ = [
    "Aggregate",
    "Update",
    "aggregate",
    "coordinate_median",
    "fedavg",
    "finite",
    "krum",
    "norm_bound",
    "trimmed_mean",
]
