"""How a domain agrees on the sample-weighted average of its members' values.

Two schemes, simulated here as pure functions over a graph so they can be
compared under message loss (``bench/gossip.py``; a bench-only simulation, not part of the product):

- **Latest-state tables** (what metamesh nodes do): every node floods its own
  ``(value, samples, version)`` over the domain mesh; relays forward entries they
  have not seen (dedup by sender and version); each node's estimate is the exact
  weighted average of the latest entry it holds per member. Exact once every
  entry has arrived; a lost message is repaired by the next version or the
  keepalive republish; robust rules (trimmed mean, median, Krum) can run on
  the individual entries.
- **Push-sum** (Kempe, Dobra, Gehrke 2003): each node keeps ``(s, w)``, keeps a
  share and pushes equal shares to ``fanout`` random neighbours each round;
  ``s / w`` converges to the weighted average with constant-size messages, but
  a lost message loses mass for good, so the estimate is biased under loss.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SimResult", "mesh_graph", "simulate_push_sum", "simulate_tables", "spread_rounds"]


def mesh_graph(n: int, degree: int, rng: random.Random) -> list[list[int]]:
    """An undirected random graph where every node has at least ``degree`` neighbours
    (or all others, if fewer), like a gossip mesh after grafting."""
    adj: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        while len(adj[i]) < min(degree, n - 1):
            j = rng.randrange(n)
            if j != i:
                adj[i].add(j)
                adj[j].add(i)
    return [sorted(a) for a in adj]


@dataclass(frozen=True, slots=True)
class SimResult:
    rounds_to_target: int | None
    residual: float
    messages_per_node_round: float
    entries_per_node_round: float


def _rel_error(estimates: np.ndarray, truth: float) -> float:
    return float(np.max(np.abs(estimates - truth)) / max(abs(truth), 1e-12))


def simulate_tables(
    values: Sequence[float],
    samples: Sequence[float],
    adj: list[list[int]],
    *,
    loss: float,
    rounds: int,
    keepalive: int,
    rng: random.Random,
    target: float = 1e-3,
) -> SimResult:
    """Flooding of latest-state entries with dedup; one batched message per neighbour per round."""
    n = len(values)
    x, s = np.asarray(values, float), np.asarray(samples, float)
    truth = float((x * s).sum() / s.sum())
    known = [{i: 0} for i in range(n)]  # node -> {member: version}
    fresh: list[dict[int, int]] = [{i: 0} for i in range(n)]
    version = [0] * n
    reached = None
    messages = entries = 0
    for r in range(1, rounds + 1):
        if keepalive and r % keepalive == 0:
            for i in range(n):
                version[i] += 1
                known[i][i] = version[i]
                fresh[i][i] = version[i]
        outgoing = fresh
        fresh = [{} for _ in range(n)]
        for i in range(n):
            if not outgoing[i]:
                continue
            for j in adj[i]:
                messages += 1
                entries += len(outgoing[i])
                if rng.random() < loss:
                    continue
                for member, ver in outgoing[i].items():
                    if known[j].get(member, -1) < ver:
                        known[j][member] = ver
                        fresh[j][member] = ver
        est = np.array([sum(x[m] * s[m] for m in k) / sum(s[m] for m in k) for k in known])
        if reached is None and _rel_error(est, truth) <= target:
            reached = r
    est = np.array([sum(x[m] * s[m] for m in k) / sum(s[m] for m in k) for k in known])
    return SimResult(reached, _rel_error(est, truth), messages / (n * rounds), entries / (n * rounds))


def simulate_push_sum(
    values: Sequence[float],
    samples: Sequence[float],
    adj: list[list[int]],
    *,
    loss: float,
    rounds: int,
    fanout: int,
    rng: random.Random,
    target: float = 1e-3,
) -> SimResult:
    n = len(values)
    x, s = np.asarray(values, float), np.asarray(samples, float)
    truth = float((x * s).sum() / s.sum())
    num, wt = x * s, s.copy()
    reached = None
    messages = 0
    for r in range(1, rounds + 1):
        new_num, new_wt = np.zeros(n), np.zeros(n)
        for i in range(n):
            targets = rng.sample(adj[i], min(fanout, len(adj[i])))
            share = 1.0 / (len(targets) + 1)
            new_num[i] += num[i] * share
            new_wt[i] += wt[i] * share
            for j in targets:
                messages += 1
                if rng.random() < loss:
                    continue  # this mass is gone for good
                new_num[j] += num[i] * share
                new_wt[j] += wt[i] * share
        num, wt = new_num, new_wt
        if reached is None and _rel_error(num / wt, truth) <= target:
            reached = r
    return SimResult(reached, _rel_error(num / wt, truth), messages / (n * rounds), messages / (n * rounds))


def spread_rounds(
    adj: list[list[int]], *, coverage: float = 0.9999, loss: float = 0.0, rng: random.Random | None = None
) -> int | None:
    """Rounds until one message, relayed once by each node over the mesh, reaches ``coverage``."""
    n = len(adj)
    rng = rng or random.Random(0)
    have = {0}
    frontier = {0}
    r = 0
    while len(have) < coverage * n:
        r += 1
        nxt = set()
        for i in frontier:
            for j in adj[i]:
                if j not in have and rng.random() >= loss:
                    nxt.add(j)
        if not nxt:
            return None
        have |= nxt
        frontier = nxt
    return r
