"""Merge rules for weight deltas: pure functions over numpy values.

- ``fedavg``: the sample-weighted mean (McMahan et al.), discounted by staleness,
  so a big, fresh contribution counts most;
- ``trimmed_mean`` and ``coordinate_median``: per coordinate, robust to a minority
  of poisoned updates (Yin et al. 2018);
- ``krum``: keeps the updates closest to their neighbours (Blanchard et al. 2017),
  robust to ``f`` Byzantine senders among ``n > 2f + 2``;
- ``screen``: rejects non-finite updates, shape mismatches and updates whose norm is
  far above the median — before any rule runs.

Weighted averaging accumulates in place into one buffer per tensor: no list of
scaled copies, memory bounded by one model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RULES",
    "Update",
    "aggregate",
    "coordinate_median",
    "fedavg",
    "krum",
    "l2_norm",
    "screen",
    "trimmed_mean",
]


@dataclass(frozen=True, slots=True)
class Update:
    """One peer's delta: named tensors, the samples behind them, how stale they are."""

    tensors: Mapping[str, np.ndarray]
    samples: int
    staleness: float = 0.0
    sender: str = ""


def _names(updates: Sequence[Update]) -> list[str]:
    if not updates:
        raise ValueError("no updates to merge")
    return list(updates[0].tensors)


def _out_dtype(arr: np.ndarray) -> np.dtype[np.floating]:
    return arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)


def fedavg(updates: Sequence[Update], *, staleness_decay: float = 0.5) -> dict[str, np.ndarray]:
    """Sample-weighted mean; weight = samples * staleness_decay ** staleness."""
    names = _names(updates)
    weights = np.array([u.samples * staleness_decay**u.staleness for u in updates], dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        raise ValueError("updates carry no weight (zero samples)")
    out = {}
    for name in names:
        first = updates[0].tensors[name]
        acc = np.zeros(first.shape, dtype=np.float64)
        tmp = np.empty(first.shape, dtype=np.float64)
        for u, w in zip(updates, weights, strict=True):
            np.multiply(u.tensors[name], w / total, out=tmp)
            acc += tmp
        out[name] = acc.astype(_out_dtype(first), copy=False)
    return out


def _stack(updates: Sequence[Update], name: str) -> np.ndarray:
    return np.stack([np.asarray(u.tensors[name], dtype=np.float64) for u in updates])


def trimmed_mean(updates: Sequence[Update], *, trim: float = 0.2) -> dict[str, np.ndarray]:
    """Per coordinate, drop the ``trim`` fraction of highest and lowest values, average the rest."""
    if not 0 <= trim < 0.5:
        raise ValueError("trim must be in [0, 0.5)")
    names = _names(updates)
    k = int(len(updates) * trim)
    out = {}
    for name in names:
        s = np.sort(_stack(updates, name), axis=0)
        kept = s[k : len(updates) - k]
        out[name] = kept.mean(axis=0).astype(_out_dtype(updates[0].tensors[name]), copy=False)
    return out


def coordinate_median(updates: Sequence[Update]) -> dict[str, np.ndarray]:
    names = _names(updates)
    return {
        n: np.median(_stack(updates, n), axis=0).astype(_out_dtype(updates[0].tensors[n]), copy=False)
        for n in names
    }


def _flat(u: Update, names: Sequence[str]) -> np.ndarray:
    return np.concatenate([np.asarray(u.tensors[n], dtype=np.float64).ravel() for n in names])


def krum(updates: Sequence[Update], *, f: int, m: int = 1) -> dict[str, np.ndarray]:
    """Multi-Krum: average the ``m`` updates with the smallest sum of squared distances
    to their ``n - f - 2`` nearest neighbours."""
    names = _names(updates)
    n = len(updates)
    if f < 0 or n - f - 2 < 1:
        raise ValueError(f"Krum needs n > f + 2 (n={n}, f={f})")
    if not 1 <= m <= n:
        raise ValueError("m must be in [1, n]")
    flat = np.stack([_flat(u, names) for u in updates])
    sq = np.einsum("ij,ij->i", flat, flat)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
    scores = []
    for i in range(n):
        others = np.delete(dist[i], i)
        scores.append(np.sort(others)[: n - f - 2].sum())
    chosen = np.argsort(scores, kind="stable")[:m]
    return {
        name: np.mean(
            [np.asarray(updates[i].tensors[name], dtype=np.float64) for i in chosen], axis=0
        ).astype(_out_dtype(updates[0].tensors[name]), copy=False)
        for name in names
    }


def l2_norm(update: Update) -> float:
    """L2 norm over all tensors; NaN or inf if any element is (one BLAS pass per tensor)."""
    total = 0.0
    for arr in update.tensors.values():
        flat = np.asarray(arr).reshape(-1)
        if flat.dtype.kind != "f":
            flat = flat.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            total += float(np.dot(flat, flat))
    return float(np.sqrt(total))


def screen(
    updates: Sequence[Update], *, norm_factor: float = 3.0
) -> tuple[list[Update], list[tuple[Update, str]]]:
    """Split updates into those fit to merge and those rejected, with a reason each."""
    if not updates:
        return [], []
    shapes = {n: a.shape for n, a in updates[0].tensors.items()}
    rejected: list[tuple[Update, str]] = []
    fit: list[tuple[Update, float]] = []
    for u in updates:
        if {n: a.shape for n, a in u.tensors.items()} != shapes:
            rejected.append((u, "shape_mismatch"))
            continue
        norm = l2_norm(u)
        if not np.isfinite(norm):
            rejected.append((u, "non_finite"))
            continue
        fit.append((u, norm))
    if len(fit) >= 3:
        median = float(np.median([nrm for _, nrm in fit]))
        bound = norm_factor * median
        kept = []
        for u, nrm in fit:
            if median > 0 and nrm > bound:
                rejected.append((u, "outlier"))
            else:
                kept.append(u)
        return kept, rejected
    return [u for u, _ in fit], rejected


RULES = ("fedavg", "trimmed_mean", "median", "krum")


def aggregate(
    updates: Sequence[Update],
    *,
    rule: str = "fedavg",
    norm_factor: float = 3.0,
    trim: float = 0.2,
    f: int = 1,
    staleness_decay: float = 0.5,
) -> tuple[dict[str, np.ndarray], list[tuple[Update, str]]]:
    """Screen, then merge with ``rule``; returns the merged delta and the rejections."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    kept, rejected = screen(updates, norm_factor=norm_factor)
    if not kept:
        raise ValueError("every update was rejected")
    if rule == "fedavg":
        return fedavg(kept, staleness_decay=staleness_decay), rejected
    if rule == "trimmed_mean":
        return trimmed_mean(kept, trim=trim), rejected
    if rule == "median":
        return coordinate_median(kept), rejected
    return krum(kept, f=min(f, max(len(kept) - 3, 0))), rejected
