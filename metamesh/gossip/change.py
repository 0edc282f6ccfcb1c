"""Send on change: publish when the state moved by more than a threshold, or on keepalive.

Pure logic; time is the ``now`` argument. A :class:`ChangeGate` compares the
current state with the last one sent using a metric function; two metrics
are provided:

* :func:`qtable_change` -- the largest absolute change of any Q-value over
  labelled tables; a cell that appeared or disappeared (label sets changed)
  counts as an infinite change, so a grown table is always sent;
* :func:`tensor_change` -- relative L2 change of a map of tensors,
  ``||cur - last|| / max(||last||, eps)`` over all tensors together; a
  changed set of names or a changed shape counts as infinite.

A metric that returns NaN counts as changed (the state is sent, and the
receiver's validation reports the non-finite values loudly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar

import numpy as np

__all__ = ["ChangeGate", "LabelledTable", "copy_tensors", "qtable_change", "tensor_change"]

T = TypeVar("T")


class LabelledTable(Protocol):
    """Anything with ``states``, ``actions`` and a (S, A) ``values`` array, e.g. ``QTableValue``."""

    @property
    def states(self) -> tuple[str, ...]: ...
    @property
    def actions(self) -> tuple[str, ...]: ...
    @property
    def values(self) -> np.ndarray: ...


class ChangeGate(Generic[T]):
    """Decides when to publish a state; pure, does not read the clock.

    ``should_send`` is True on the first call, when ``now - last_sent >=
    keepalive``, or when ``metric(last_sent_state, current) > threshold``.
    Call ``mark_sent`` after actually publishing. ``snapshot`` copies the
    state kept for comparison (default: kept as is -- pass :func:`copy_tensors`
    or similar when the caller mutates its arrays in place).
    """

    __slots__ = ("_keepalive", "_last", "_last_at", "_metric", "_snapshot", "_threshold")

    def __init__(
        self,
        threshold: float,
        keepalive: float,
        metric: Callable[[T, T], float],
        *,
        snapshot: Callable[[T], T] | None = None,
    ) -> None:
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold must be finite and >= 0, got {threshold!r}")
        if not keepalive > 0:
            raise ValueError(f"keepalive must be > 0, got {keepalive!r}")
        self._threshold = threshold
        self._keepalive = keepalive
        self._metric = metric
        self._snapshot = snapshot
        self._last: T | None = None
        self._last_at = -math.inf

    def should_send(self, current: T, now: float) -> bool:
        """Whether ``current`` should be published at ``now``."""
        if self._last is None or now - self._last_at >= self._keepalive:
            return True
        return not self._metric(self._last, current) <= self._threshold

    def mark_sent(self, current: T, now: float) -> None:
        """Record that ``current`` was published at ``now``."""
        self._last = current if self._snapshot is None else self._snapshot(current)
        self._last_at = now

    @property
    def last_sent_at(self) -> float | None:
        """When the state was last published, or None before the first publish."""
        return None if self._last is None else self._last_at


def qtable_change(last: LabelledTable, current: LabelledTable) -> float:
    """Largest ``|current - last|`` over all cells; ``inf`` if a cell was added or removed."""
    if set(last.states) != set(current.states) or set(last.actions) != set(current.actions):
        return math.inf
    if not current.values.size:
        return 0.0
    if last.states == current.states and last.actions == current.actions:
        old = last.values
    else:  # same labels in another order: align last onto current's order
        rows = [last.states.index(s) for s in current.states]
        cols = [last.actions.index(a) for a in current.actions]
        old = last.values[np.ix_(rows, cols)]
    return float(np.max(np.abs(current.values - old)))


def tensor_change(
    last: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray], eps: float = 1e-12
) -> float:
    """``||current - last|| / max(||last||, eps)`` over all tensors; ``inf`` if names or shapes differ."""
    if last.keys() != current.keys():
        return math.inf
    diff_sq = 0.0
    last_sq = 0.0
    for name, cur in current.items():
        old = last[name]
        if old.shape != cur.shape:
            return math.inf
        d = np.subtract(cur, old, dtype=np.result_type(cur.dtype, old.dtype, np.float32)).ravel()
        o = old.ravel()
        diff_sq += float(np.dot(d, d))
        last_sq += float(np.dot(o, o))
    return math.sqrt(diff_sq) / max(math.sqrt(last_sq), eps)


def copy_tensors(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A deep copy of a tensor map, for :class:`ChangeGate`'s ``snapshot``."""
    return {k: np.array(v, copy=True) for k, v in tensors.items()}
