"""Q-table merge: per (state, action), the average of values weighted by visit counts.

Pure functions over numpy values. Tables are labelled: a table knows its
state and action names, so tables from peers that have seen different states
merge by label, and states or actions unknown to some tables are added, not
dropped.

Counting each experience exactly once
-------------------------------------
Merging is only unbiased if every visit is counted once. :class:`PeerTables`
enforces the simple rule that makes this true: **a node publishes only its
own-experience table** (the values and visits its own learner produced), never
the merged view; it keeps its own table and the **latest** table of each peer
(a newer version replaces the older, it is never added to it), and recomputes
the merged view from those. Merging a merged table back in, or summing
successive versions of a peer's table, would count the same visits again and
again (count inflation) and let the oldest knowledge dominate. The
alternative -- subtracting from a peer's table the visits the node already
holds -- needs per-source provenance of every visit and is not worth it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PeerTables", "QTableValue", "merge_qtables"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class QTableValue:
    """A labelled Q-table: ``values[s, a]`` and ``visits[s, a]`` for ``states[s]``, ``actions[a]``.

    Validated on construction (raises :class:`ValueError`): labels unique,
    both arrays of shape ``(len(states), len(actions))``, values finite,
    visits finite and >= 0. Arrays are converted to float64 and must not be
    mutated afterwards.
    """

    states: tuple[str, ...]
    actions: tuple[str, ...]
    values: np.ndarray
    visits: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.states), len(self.actions))
        if len(set(self.states)) != shape[0] or len(set(self.actions)) != shape[1]:
            raise ValueError("state and action labels must be unique")
        values = np.asarray(self.values, dtype=np.float64)
        visits = np.asarray(self.visits, dtype=np.float64)
        if values.shape != shape or visits.shape != shape:
            raise ValueError(f"values {values.shape} and visits {visits.shape} must both be {shape}")
        if not np.isfinite(values).all():
            raise ValueError("values must be finite")
        if not (np.isfinite(visits).all() and (visits >= 0).all()):
            raise ValueError("visits must be finite and >= 0")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "visits", visits)

    @classmethod
    def empty(cls) -> QTableValue:
        """A table with no states and no actions."""
        return cls((), (), np.zeros((0, 0)), np.zeros((0, 0)))

    def cell(self, state: str, action: str) -> tuple[float, float]:
        """``(value, visits)`` of one cell; raises KeyError for unknown labels."""
        s, a = self.states.index(state), self.actions.index(action)
        return float(self.values[s, a]), float(self.visits[s, a])


def _union(labels: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for group in labels for x in group))


def merge_qtables(tables: Sequence[QTableValue]) -> QTableValue:
    """Visit-weighted average per (state, action) over the union of labels.

    ``merged.values[s, a] = sum_t visits_t[s, a] * values_t[s, a] / sum_t visits_t[s, a]``
    and ``merged.visits = sum_t visits_t``. A cell nobody has visited (total 0,
    including cells that exist only because labels were unioned) gets value 0.0
    -- the neutral initial Q-value; a learner that wants optimistic initial
    values should apply them to cells with zero visits itself. Labels keep the
    order of first appearance, so the caller's own table (pass it first) keeps
    its indices. Pure.
    """
    if not tables:
        return QTableValue.empty()
    states = _union([t.states for t in tables])
    actions = _union([t.actions for t in tables])
    s_index = {s: i for i, s in enumerate(states)}
    a_index = {a: i for i, a in enumerate(actions)}
    weighted = np.zeros((len(states), len(actions)))
    visits = np.zeros_like(weighted)
    for t in tables:
        if t.values.size == 0:
            continue
        rows = np.fromiter((s_index[s] for s in t.states), dtype=np.intp, count=len(t.states))
        cols = np.fromiter((a_index[a] for a in t.actions), dtype=np.intp, count=len(t.actions))
        cell = np.ix_(rows, cols)  # labels are unique within a table, so the indices are too
        weighted[cell] += t.values * t.visits
        visits[cell] += t.visits
    values = np.divide(weighted, visits, out=np.zeros_like(weighted), where=visits > 0)
    return QTableValue(states, actions, values, visits)


class PeerTables:
    """The node's own-experience table and the latest own-experience table of each peer.

    Bounded: at most ``max_peers`` peers; the peer updated least recently is
    forgotten first. :meth:`merged` caches its result until something changes.
    """

    __slots__ = ("_cache", "_max", "_own", "_peers")

    def __init__(self, own: QTableValue | None = None, *, max_peers: int = 256) -> None:
        if max_peers < 1:
            raise ValueError(f"max_peers must be >= 1, got {max_peers!r}")
        self._own = own if own is not None else QTableValue.empty()
        self._max = max_peers
        self._peers: OrderedDict[str, tuple[int, QTableValue]] = OrderedDict()
        self._cache: QTableValue | None = None

    @property
    def own(self) -> QTableValue:
        """The node's own-experience table: the one it publishes."""
        return self._own

    def set_own(self, table: QTableValue) -> None:
        """Replace the own-experience table."""
        self._own = table
        self._cache = None

    def update_peer(self, peer: str, table: QTableValue, version: int) -> bool:
        """Keep ``table`` as ``peer``'s latest if ``version`` is newer than the one held; True if kept."""
        held = self._peers.get(peer)
        if held is not None and version <= held[0]:
            return False
        self._peers[peer] = (version, table)
        self._peers.move_to_end(peer)
        if len(self._peers) > self._max:
            old, _ = self._peers.popitem(last=False)
            log.debug("peer tables full: forgot %r", old)
        self._cache = None
        return True

    def remove_peer(self, peer: str) -> None:
        """Forget ``peer``'s table (e.g. it was quarantined)."""
        if self._peers.pop(peer, None) is not None:
            self._cache = None

    def peers(self) -> list[str]:
        """Peers whose table is held, least recently updated first."""
        return list(self._peers)

    def merged(self) -> QTableValue:
        """``merge_qtables([own, *latest peer tables])``; the own table's labels come first."""
        if self._cache is None:
            self._cache = merge_qtables([self._own, *(t for _, t in self._peers.values())])
        return self._cache
