"""The meta-engine's updates: pure functions from what the network reported to meta-parameters.

Each is small enough to check by hand (``tests/coordinator/test_meta.py`` does):

* :func:`reptile_step` -- move a domain's initial weights a step towards its
  members' averaged weights (Reptile, Nichol et al. 2018), so a node that
  starts later starts nearer to where its domain ended up;
* :func:`adapt_rate` -- raise a learning rate while the loss falls steadily,
  cut it when the loss rises or oscillates;
* :func:`prior_row` -- a prior Q-row for a category: the visit-weighted mean
  of every node's row in every domain;
* :func:`settled_epsilon` -- exploration for a category from how settled its
  Q-values are: the gap between the best and the runner-up action, and how
  often the runner-up was tried.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["adapt_rate", "prior_row", "reptile_step", "settled_epsilon"]


def reptile_step(
    init: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray], step: float
) -> dict[str, np.ndarray]:
    """``init + step * (target - init)`` per tensor; ``step`` in (0, 1]. Raises ValueError on mismatch."""
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step}")
    if init.keys() != target.keys():
        raise ValueError("init and target name different tensors")
    out = {}
    for name, w in init.items():
        t = target[name]
        if w.shape != t.shape:
            raise ValueError(f"{name}: shapes {w.shape} and {t.shape} differ")
        out[name] = (w + np.float32(step) * (t - w)).astype(np.float32)
    return out


def adapt_rate(
    lr: float,
    losses: Sequence[float],
    *,
    window: int = 3,
    up: float = 1.1,
    down: float = 0.7,
    lo: float = 1e-4,
    hi: float = 1.0,
) -> float:
    """The next learning rate from the last ``window + 1`` losses (oldest first).

    Every step down (falling steadily): ``lr * up``. The last step up, or the
    direction changing at least twice (oscillating): ``lr * down``. Otherwise,
    or with too few losses, ``lr`` unchanged. Always clamped to ``[lo, hi]``.
    """
    recent = [x for x in losses[-(window + 1) :] if math.isfinite(x)]
    if len(recent) < window + 1:
        return min(max(lr, lo), hi)
    steps = [b - a for a, b in itertools.pairwise(recent)]
    turns = sum(1 for a, b in itertools.pairwise(steps) if (a > 0) != (b > 0))
    if all(s < 0 for s in steps):
        lr *= up
    elif steps[-1] > 0 or turns >= 2:
        lr *= down
    return min(max(lr, lo), hi)


def prior_row(rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Visit-weighted mean of ``(values, visits)`` rows; actions nobody tried get value 0 and 0 visits."""
    if not rows:
        raise ValueError("no rows")
    values = np.stack([np.asarray(v, np.float64) for v, _ in rows])
    visits = np.stack([np.asarray(n, np.float64) for _, n in rows])
    total = visits.sum(axis=0)
    weighted = (values * visits).sum(axis=0)
    mean = np.divide(weighted, total, out=np.zeros_like(total), where=total > 0)
    return mean, total


def settled_epsilon(
    values: np.ndarray, visits: np.ndarray, *, start: float = 0.3, floor: float = 0.02
) -> float:
    """``floor + (start - floor) / (1 + gap * sqrt(n2))``.

    ``gap`` is the best value minus the runner-up's, ``n2`` the runner-up's
    visits: a clear winner over a well-tried runner-up means little is left
    to explore. Fewer than two actions, or no visits: ``start``.
    """
    if len(values) < 2 or float(np.sum(visits)) == 0:
        return start
    order = np.argsort(values)[::-1]
    gap = float(values[order[0]] - values[order[1]])
    n2 = float(visits[order[1]])
    return floor + (start - floor) / (1.0 + max(gap, 0.0) * math.sqrt(max(n2, 0.0)))
