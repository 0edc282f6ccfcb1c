"""The Q-table of the prompt learner, as pure values and functions.

Each episode is one step (a question, a strategy, a reward), so ``Q(s, a)`` is
the mean reward of strategy ``a`` on category ``s``: updated as a sample
average by default, or with a constant step ``alpha``.

A node keeps its *own* experience apart from the latest tables of its peers
(each peer's own experience too) and decides on the visit-weighted merge of
them all. Publishing only own experience and re-merging from the latest of
each peer means no experience is ever counted twice, however often tables
travel.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["QRow", "choose", "epsilon_for", "greedy", "mean_rows", "merge_rows", "update"]


@dataclass(slots=True)
class QRow:
    """One state's values and visit counts, over the learner's actions."""

    values: np.ndarray
    visits: np.ndarray

    @classmethod
    def zeros(cls, n_actions: int) -> QRow:
        return cls(np.zeros(n_actions), np.zeros(n_actions))

    def copy(self) -> QRow:
        return QRow(self.values.copy(), self.visits.copy())


def update(row: QRow, action: int, reward: float, *, alpha: float | None = None) -> None:
    """One Q-update in place: sample average (``alpha=None``) or constant step."""
    row.visits[action] += 1
    step = 1.0 / row.visits[action] if alpha is None else alpha
    row.values[action] += step * (reward - row.values[action])


def merge_rows(rows: Iterable[QRow], n_actions: int) -> QRow:
    """Visit-weighted average per action; actions nobody tried stay at 0 with 0 visits."""
    total_v = np.zeros(n_actions)
    weighted = np.zeros(n_actions)
    for r in rows:
        total_v += r.visits
        weighted += r.visits * r.values
    values = np.divide(weighted, total_v, out=np.zeros(n_actions), where=total_v > 0)
    return QRow(values, total_v)


def mean_rows(rows: Iterable[QRow], n_actions: int) -> QRow:
    """The plain mean of the values of the rows that tried each action, ignoring how
    often they did: the naive alternative to :func:`merge_rows`, kept for comparison."""
    total_v = np.zeros(n_actions)
    value_sum = np.zeros(n_actions)
    count = np.zeros(n_actions)
    for r in rows:
        tried = r.visits > 0
        total_v += r.visits
        value_sum += np.where(tried, r.values, 0.0)
        count += tried
    return QRow(np.divide(value_sum, count, out=np.zeros(n_actions), where=count > 0), total_v)


def greedy(row: QRow, rng: random.Random) -> int:
    """The best-valued action among those tried; ties broken at random; untried if none is."""
    tried = row.visits > 0
    if not tried.any():
        return rng.randrange(len(row.values))
    best = np.max(row.values[tried])
    candidates = [i for i in range(len(row.values)) if tried[i] and row.values[i] == best]
    return rng.choice(candidates)


def epsilon_for(visits: float, *, start: float, floor: float, decay: float) -> float:
    """Exploration that decays with the experience behind a state (own and peers')."""
    return max(floor, start * math.pow(decay, visits))


def choose(row: QRow, epsilon: float, rng: random.Random, *, min_tries: int = 0) -> int:
    """Epsilon-greedy over one state's row, after every action has ``min_tries`` visits
    (own or peers'): a greedy choice on one or two samples locks in early luck."""
    if min_tries:
        short = [i for i in range(len(row.visits)) if row.visits[i] < min_tries]
        if short:
            return rng.choice(short)
    if rng.random() < epsilon:
        return rng.randrange(len(row.values))
    return greedy(row, rng)
