"""Weight-delta aggregation: FedAvg with staleness discount, robust rules, outlier filters.

Pure functions over numpy values: an :class:`Update` is a mapping of tensor
name to array plus a sample count and a staleness; every rule returns a new
``dict[str, ndarray]`` and never mutates its inputs. All updates passed to one
call must have the same tensor names and shapes (else :class:`ValueError`).

Hot path. Work is vectorised per tensor; Python loops run over updates and
over column blocks of :data:`BLOCK` elements, never over elements. Weighted
sums are cache-blocked: for each block of the output, every update is
multiplied into one preallocated scratch block and added to the output block
in place, so the output block stays in cache and memory traffic is one read
per input. Measured on the 2-core target, 8 float32 updates of 10M elements:
plain ``np.multiply(x, w, out=tmp); np.add(acc, tmp, out=acc)`` over whole
arrays 154 ms, ``acc += w * x`` 149 ms, the blocked form 63 ms. The order
statistics (trimmed mean, median) stack one block of all updates at a time,
so their extra memory is ``n * BLOCK`` elements, not ``n`` copies of a model.

Norms are ``np.dot`` of each flattened tensor with itself, summed over
tensors: one pass per update, and NaN or inf in any element makes the norm
non-finite, so the same pass serves :func:`finite` and :func:`norm_bound`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from metamesh.errors import Reason

__all__ = [
    "BLOCK",
    "Aggregate",
    "Update",
    "aggregate",
    "coordinate_median",
    "direction_screen",
    "fedavg",
    "finite",
    "krum",
    "krum_select",
    "norm_bound",
    "sq_norms",
    "trimmed_mean",
]

log = logging.getLogger(__name__)

BLOCK = 1 << 16
"""Elements per column block in the blocked loops (256 KiB of float32)."""

Rule = Literal["fedavg", "trimmed_mean", "median", "krum"]


@dataclass(frozen=True, slots=True, eq=False)
class Update:
    """One peer's weight delta: ``tensors`` learned from ``samples`` samples, ``staleness`` rounds old.

    Raises :class:`ValueError` if ``samples < 0`` or ``staleness`` is negative or not finite.
    """

    tensors: Mapping[str, np.ndarray]
    samples: int
    staleness: float = 0.0

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ValueError(f"samples must be >= 0, got {self.samples!r}")
        if not (math.isfinite(self.staleness) and self.staleness >= 0):
            raise ValueError(f"staleness must be finite and >= 0, got {self.staleness!r}")


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Result of :func:`aggregate`: the tensors, which inputs were used, which rejected and why."""

    tensors: dict[str, np.ndarray]
    used: tuple[int, ...]
    rejected: tuple[tuple[int, Reason], ...]


def _layout(updates: Sequence[Update]) -> dict[str, tuple[tuple[int, ...], np.dtype[np.floating]]]:
    """Names, shapes and output dtypes shared by all updates; ValueError if they differ."""
    if not updates:
        raise ValueError("no updates")
    first = updates[0].tensors
    out: dict[str, tuple[tuple[int, ...], np.dtype[np.floating]]] = {}
    for name, arr in first.items():
        dtypes = [arr.dtype]
        for u in updates[1:]:
            other = u.tensors.get(name)
            if other is None or other.shape != arr.shape:
                raise ValueError(f"tensor {name!r} is missing or has another shape in some update")
            dtypes.append(other.dtype)
        out[name] = (arr.shape, np.dtype(np.result_type(*dtypes, np.float32)))
    if any(len(u.tensors) != len(first) for u in updates):
        raise ValueError("updates carry different tensor names")
    return out


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ravel(a) if a.dtype.kind == "f" else np.ravel(a).astype(np.float64)


def _weighted_sum(
    arrays: Sequence[np.ndarray],
    weights: Sequence[float],
    shape: tuple[int, ...],
    dtype: np.dtype[np.floating],
) -> np.ndarray:
    """``sum_i weights[i] * arrays[i]`` into one new array, cache-blocked, in place."""
    out = np.empty(shape, dtype=dtype)
    acc = out.reshape(-1)
    flats = [np.ravel(a) for a in arrays]
    ws = [dtype.type(w) for w in weights]
    size = acc.size
    scratch = np.empty(min(size, BLOCK), dtype=dtype)
    for s in range(0, size, BLOCK):
        e = min(size, s + BLOCK)
        block, tmp = acc[s:e], scratch[: e - s]
        np.multiply(flats[0][s:e], ws[0], out=block, casting="unsafe")
        for x, w in zip(flats[1:], ws[1:], strict=True):
            np.multiply(x[s:e], w, out=tmp, casting="unsafe")
            np.add(block, tmp, out=block)
    return out


def _columnwise(
    updates: Sequence[Update], reduce: Callable[[np.ndarray, np.ndarray], object]
) -> dict[str, np.ndarray]:
    """Apply ``reduce(stacked_block, out_block)`` to (n, block) stacks of every tensor."""
    out: dict[str, np.ndarray] = {}
    n = len(updates)
    for name, (shape, dtype) in _layout(updates).items():
        res = np.empty(shape, dtype=dtype)
        flat_out = res.reshape(-1)
        flats = [np.ravel(u.tensors[name]) for u in updates]
        stack = np.empty((n, min(flat_out.size, BLOCK)), dtype=dtype)
        for s in range(0, flat_out.size, BLOCK):
            e = min(flat_out.size, s + BLOCK)
            block = stack[:, : e - s]
            for i, x in enumerate(flats):
                block[i] = x[s:e]
            reduce(block, flat_out[s:e])
        out[name] = res
    return out


def fedavg(updates: Sequence[Update], *, staleness_decay: float = 0.5) -> dict[str, np.ndarray]:
    """Weighted mean with weight ``samples * staleness_decay ** staleness`` (weights normalised).

    Raises :class:`ValueError` if the weights sum to zero or ``staleness_decay`` is not in (0, 1].
    """
    if not 0 < staleness_decay <= 1:
        raise ValueError(f"staleness_decay must be in (0, 1], got {staleness_decay!r}")
    layout = _layout(updates)
    raw = [u.samples * staleness_decay**u.staleness for u in updates]
    total = math.fsum(raw)
    if not total > 0:
        raise ValueError("all updates have zero weight (no samples)")
    weights = [w / total for w in raw]
    return {
        name: _weighted_sum([u.tensors[name] for u in updates], weights, shape, dtype)
        for name, (shape, dtype) in layout.items()
    }


def trimmed_mean(updates: Sequence[Update], trim: float = 0.2) -> dict[str, np.ndarray]:
    """Per coordinate, drop the ``floor(trim * n)`` lowest and highest values and average the rest.

    Unweighted (a peer cannot buy influence by claiming many samples).
    Raises :class:`ValueError` unless ``0 <= trim < 0.5``.
    """
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
    n = len(updates)
    k = int(trim * n)

    def reduce(block: np.ndarray, out: np.ndarray) -> None:
        if k:
            block.partition([k, n - k - 1], axis=0)  # the middle rows now hold the kept values
        np.mean(block[k : n - k], axis=0, out=out)

    return _columnwise(updates, reduce)


def coordinate_median(updates: Sequence[Update]) -> dict[str, np.ndarray]:
    """Per coordinate median (mean of the two middle values for even n); unweighted."""

    def reduce(block: np.ndarray, out: np.ndarray) -> None:
        np.median(block, axis=0, out=out, overwrite_input=True)

    return _columnwise(updates, reduce)


def krum_select(updates: Sequence[Update], f: int, m: int = 1) -> list[int]:
    """Indices of the ``m`` updates with the lowest Krum scores (Blanchard et al. 2017), best first.

    Score of ``i``: sum of squared distances to its ``n - f - 2`` nearest other
    updates. Needs ``n >= 2f + 3`` and ``1 <= m <= n - f`` (else ValueError).
    """
    n = len(updates)
    if f < 0 or n < 2 * f + 3:
        raise ValueError(f"krum needs n >= 2f + 3 (n={n}, f={f})")
    if not 1 <= m <= n - f:
        raise ValueError(f"m must be in [1, n - f] = [1, {n - f}], got {m}")
    dist = np.zeros((n, n))
    for name, (shape, dtype) in _layout(updates).items():
        flats = [_flat(u.tensors[name]) for u in updates]
        tmp = np.empty(int(np.prod(shape)), dtype=dtype)
        for i in range(n):
            for j in range(i + 1, n):
                np.subtract(flats[i], flats[j], out=tmp, casting="unsafe")
                d = float(np.dot(tmp, tmp))
                dist[i, j] += d
                dist[j, i] += d
    closest = n - f - 2
    scores = [float(np.sort(np.delete(dist[i], i))[:closest].sum()) for i in range(n)]
    return sorted(range(n), key=lambda i: (scores[i], i))[:m]


def krum(updates: Sequence[Update], f: int, m: int = 1) -> dict[str, np.ndarray]:
    """Multi-Krum: the unweighted mean of the ``m`` updates :func:`krum_select` picks."""
    chosen = [updates[i] for i in krum_select(updates, f, m)]
    equal = [1.0 / len(chosen)] * len(chosen)
    return {
        name: _weighted_sum([u.tensors[name] for u in chosen], equal, shape, dtype)
        for name, (shape, dtype) in _layout(chosen).items()
    }


def sq_norms(updates: Sequence[Update]) -> np.ndarray:
    """Squared L2 norm of each update over all its tensors (float64); NaN/inf for non-finite ones.

    The dot product runs in the tensor's own dtype (fast); where a float32 one
    overflows although every value is finite, it is taken again in float64, so
    a huge but finite update is judged by its norm, not as non-finite.
    """
    out = np.zeros(len(updates))
    for i, u in enumerate(updates):
        for arr in u.tensors.values():
            x = _flat(arr)
            with np.errstate(over="ignore", invalid="ignore"):
                sq = float(np.dot(x, x))
            if math.isinf(sq) and x.dtype != np.float64 and np.isfinite(x).all():
                sq = float(np.dot(x.astype(np.float64), x.astype(np.float64)))
            out[i] += sq
    return out


def _split(sq: np.ndarray, factor: float | None) -> tuple[list[int], list[tuple[int, Reason]]]:
    kept: list[int] = []
    rejected: list[tuple[int, Reason]] = []
    ok = np.isfinite(sq)
    limit = math.inf
    if factor is not None:
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        if ok.any():
            limit = factor * math.sqrt(float(np.median(sq[ok])))
    for i, good in enumerate(ok):
        if not good:
            rejected.append((i, Reason.NON_FINITE))
        elif math.sqrt(float(sq[i])) > limit:
            rejected.append((i, Reason.OUTLIER))
        else:
            kept.append(i)
    return kept, rejected


def finite(updates: Sequence[Update]) -> tuple[list[Update], list[Update]]:
    """Split into updates whose every element is finite, and the others."""
    kept, rejected = _split(sq_norms(updates), None)
    return [updates[i] for i in kept], [updates[i] for i, _ in rejected]


def norm_bound(updates: Sequence[Update], factor: float = 3.0) -> tuple[list[Update], list[Update]]:
    """Split into updates with L2 norm <= ``factor`` x the median norm, and the others.

    Non-finite updates are rejected too and do not count towards the median.
    """
    kept, rejected = _split(sq_norms(updates), factor)
    return [updates[i] for i in kept], [updates[i] for i, _ in rejected]


def direction_screen(updates: Sequence[Update], min_cosine: float) -> list[int]:
    """Indices of updates whose cosine similarity to the coordinate-wise median of the
    other updates is at least ``min_cosine``.

    The norm bound misses a sign-flipped or random update of ordinary size; its
    direction gives it away: a flipped update points against the majority's
    median, noise is orthogonal to it. Distance to the median would not do on
    non-IID data, where an honest node of a rare region is farther from the
    median than a flipped update of a typical one, yet still points its way
    (measured on the experts' synthetic domains: honest cosines 0.10-0.92 after
    one round, flipped -0.7, random 0.0). The median stands in for FLTrust's
    trusted root update. Needs 3 or more updates (with fewer there is no
    majority to measure against: all are kept). Costs ``n`` medians of ``n - 1``
    updates, block by block.

    Colluding senders of one shared vector defeat it at small ``n``: each copy
    pulls the median of the others its way (two identical noise vectors among
    eight updates measured cosine 0.07-0.22). Pair it with a robust ``rule``
    (``median``, ``trimmed_mean``) where collusion is a threat.
    """
    if not -1.0 <= min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be in [-1, 1], got {min_cosine!r}")
    n = len(updates)
    if n < 3:
        return list(range(n))
    dots, sq, center_sq = np.zeros(n), np.zeros(n), np.zeros(n)
    for name, (shape, _) in _layout(updates).items():
        flats = [_flat(u.tensors[name]) for u in updates]
        size = int(np.prod(shape))
        stack = np.empty((n, min(size, BLOCK)))
        for s in range(0, size, BLOCK):
            e = min(size, s + BLOCK)
            block = stack[:, : e - s]
            for i, x in enumerate(flats):
                block[i] = x[s:e]
            for i in range(n):
                # Each update against the median of the others: noise must not count towards
                # its own reference, or it would look a little like the majority.
                center = np.median(np.delete(block, i, axis=0), axis=0)
                dots[i] += float(np.dot(block[i], center))
                sq[i] += float(np.dot(block[i], block[i]))
                center_sq[i] += float(np.dot(center, center))
    cosine = dots / np.maximum(np.sqrt(sq * center_sq), 1e-30)
    return [i for i in range(n) if center_sq[i] == 0.0 or cosine[i] >= min_cosine]


def aggregate(
    updates: Sequence[Update],
    rule: Rule = "fedavg",
    *,
    norm_factor: float | None = 3.0,
    min_cosine: float | None = None,
    trusted: Collection[int] = (),
    staleness_decay: float = 0.5,
    trim: float = 0.2,
    f: int = 1,
    m: int = 1,
    min_updates: int = 1,
) -> Aggregate:
    """Reject non-finite updates, then those beyond ``norm_factor`` x the median norm, then apply ``rule``.

    One norm pass serves both filters; ``norm_factor=None`` skips the norm
    bound. ``min_cosine`` then drops survivors pointing away from their
    coordinate-wise median (:func:`direction_screen`), also as ``OUTLIER``;
    with fewer than 3 updates it cannot judge, so only ``trusted`` ones are
    used (with two updates the median norm lies between theirs, so the norm
    bound stops almost nothing either).
    Updates whose index is in ``trusted`` (a node's own) are never rejected
    as outliers, so a node surrounded by bad peers still has its own.
    Rejections carry :class:`~metamesh.errors.Reason` codes (``NON_FINITE``,
    ``OUTLIER``) to count per peer. Raises
    :class:`ValueError` if fewer than ``min_updates`` survive, for an unknown
    rule, or when the rule's own preconditions fail (e.g. Krum's ``n >= 2f + 3``).
    """
    kept, rejected = _split(sq_norms(updates), norm_factor)
    if min_cosine is not None and len(kept) >= 3:
        close = {kept[i] for i in direction_screen([updates[i] for i in kept], min_cosine)}
        rejected += [(i, Reason.OUTLIER) for i in kept if i not in close and i not in trusted]
        kept = [i for i in kept if i in close or i in trusted]
    elif min_cosine is not None:
        # Two updates have no majority to screen against: on a network that asked for the
        # screen, only trusted ones are used (the others are not blamed, just not merged yet).
        kept = [i for i in kept if i in trusted]
    spared = [i for i, r in rejected if r is Reason.OUTLIER and i in trusted]
    if spared:
        rejected = [(i, r) for i, r in rejected if i not in spared]
        kept = sorted([*kept, *spared])
    if rejected:
        reasons = ", ".join(sorted({r.value for _, r in rejected}))
        log.info("aggregate: rejected %d of %d updates (%s)", len(rejected), len(updates), reasons)
    if len(kept) < max(min_updates, 1):
        raise ValueError(f"only {len(kept)} usable updates of {len(updates)}, need {max(min_updates, 1)}")
    good = [updates[i] for i in kept]
    match rule:
        case "fedavg":
            tensors = fedavg(good, staleness_decay=staleness_decay)
        case "trimmed_mean":
            tensors = trimmed_mean(good, trim)
        case "median":
            tensors = coordinate_median(good)
        case "krum":
            tensors = krum(good, f, m)
        case _:
            raise ValueError(f"unknown rule {rule!r}")
    return Aggregate(tensors, tuple(kept), tuple(rejected))
