"""Differential privacy for shared weight deltas: clipping, Gaussian noise, an RDP accountant.

numpy only. The mechanism is DP-FedAvg's (McMahan et al. 2018): a node clips
its whole update to L2 norm ``C`` and adds Gaussian noise of std
``sigma * C`` to every coordinate; each released update is one Gaussian
mechanism with sensitivity ``C`` and noise multiplier ``sigma``.

The accountant composes releases in Renyi DP (Mironov 2017), at orders ``a``:

* full participation (sampling rate ``q = 1``): ``RDP(a) = a / (2 sigma^2)``
  per release, for every real order ``a > 1``;
* Poisson subsampling with rate ``q < 1``: the sampled Gaussian mechanism of
  Mironov, Talwar and Zhang (2019, Sec. 3.3), exact for *integer* orders::

      RDP(a) = log( sum_{k=0..a} binom(a, k) (1-q)^(a-k) q^k exp((k^2 - k) / (2 sigma^2)) ) / (a - 1)

  fractional orders are left out (+inf) in that case.

RDP composes by adding over releases, and converts to ``(eps, delta)`` by
``eps = min_a RDP(a) + log(1/delta) / (a - 1)`` (Mironov 2017, Prop. 3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metamesh.errors import ConfigError

__all__ = [
    "DEFAULT_ORDERS",
    "PrivacyConfig",
    "RDPAccountant",
    "add_noise",
    "clip_update",
    "gaussian_rdp",
    "global_norm",
    "rdp_to_epsilon",
    "sampled_gaussian_rdp",
]

log = logging.getLogger(__name__)

DEFAULT_ORDERS: tuple[float, ...] = (
    *(1.0 + x / 10.0 for x in range(1, 100)),
    *(float(a) for a in range(11, 64)),
    128.0,
    256.0,
    512.0,
)
"""The RDP orders tracked by default (the grid of TensorFlow Privacy)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyConfig:
    """Differential privacy for shared deltas.

    ``clip_norm`` bounds the L2 norm of one whole update; noise of std
    ``noise_multiplier * clip_norm`` is added per coordinate; eps is reported
    at ``delta``. ``noise_multiplier = 0`` clips without noise (eps = inf).
    Raises ConfigError for out-of-range values.
    """

    clip_norm: float
    noise_multiplier: float
    delta: float = 1e-5
    sample_rate: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ConfigError(f"clip_norm must be a positive number, got {self.clip_norm}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise ConfigError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if not 0.0 < self.delta < 1.0:
            raise ConfigError(f"delta must be in (0, 1), got {self.delta}")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be in (0, 1], got {self.sample_rate}")


# --------------------------------------------------------------------------- mechanism


def global_norm(tensors: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of all tensors taken together as one vector."""
    total = 0.0
    for t in tensors.values():
        flat = t.ravel().astype(np.float64)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_update(tensors: Mapping[str, np.ndarray], clip_norm: float) -> tuple[dict[str, np.ndarray], float]:
    """Scale the whole update so its global L2 norm is at most ``clip_norm``.

    Returns ``(clipped, norm_before)``; the inputs are not modified and the
    outputs are new float32 arrays. Raises ValueError if ``clip_norm <= 0``.
    """
    if not clip_norm > 0:
        raise ValueError(f"clip_norm must be positive, got {clip_norm}")
    norm = global_norm(tensors)
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    clipped = {k: np.ascontiguousarray(v * scale, dtype=np.float32) for k, v in tensors.items()}
    return clipped, norm


def add_noise(
    tensors: Mapping[str, np.ndarray], std: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Add i.i.d. Gaussian noise of ``std`` to every coordinate; returns new float32 arrays.

    Tensors are noised in sorted name order, so the result is a function of
    ``rng``'s state. Raises ValueError if ``std < 0``.
    """
    if not std >= 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    out: dict[str, np.ndarray] = {}
    for name in sorted(tensors):
        t = tensors[name]
        noise = rng.normal(0.0, std, size=t.shape) if std > 0 else 0.0
        out[name] = np.ascontiguousarray(t + noise, dtype=np.float32)
    return {k: out[k] for k in tensors}


# --------------------------------------------------------------------------- accounting


def gaussian_rdp(noise_multiplier: float, orders: Sequence[float]) -> np.ndarray:
    """RDP of one Gaussian mechanism with full participation: ``a / (2 sigma^2)`` per order."""
    a = np.asarray(orders, dtype=np.float64)
    if noise_multiplier <= 0:
        return np.full(a.shape, np.inf)
    return a / (2.0 * noise_multiplier**2)


def sampled_gaussian_rdp(sample_rate: float, noise_multiplier: float, order: float) -> float:
    """RDP at one order of the Poisson-sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019).

    Exact for integer orders ``a >= 2``; returns +inf for fractional orders
    when ``sample_rate < 1`` (the bound used here needs integers). Computed
    in log space so large orders do not overflow.
    """
    if noise_multiplier <= 0:
        return math.inf
    if sample_rate >= 1.0:
        return order / (2.0 * noise_multiplier**2)
    if sample_rate <= 0.0:
        return 0.0
    if order != int(order) or order < 2:
        return math.inf
    alpha = int(order)
    q, s2 = sample_rate, noise_multiplier**2
    terms = [
        math.lgamma(alpha + 1)
        - math.lgamma(k + 1)
        - math.lgamma(alpha - k + 1)
        + k * math.log(q)
        + (alpha - k) * math.log1p(-q)
        + (k * k - k) / (2.0 * s2)
        for k in range(alpha + 1)
    ]
    top = max(terms)
    log_a = top + math.log(sum(math.exp(t - top) for t in terms))
    return max(0.0, log_a / (alpha - 1))


def rdp_to_epsilon(rdp: Sequence[float] | np.ndarray, orders: Sequence[float], delta: float) -> float:
    """``min_a rdp(a) + log(1/delta) / (a - 1)``: the (eps, delta) guarantee of accumulated RDP."""
    r = np.asarray(rdp, dtype=np.float64)
    a = np.asarray(orders, dtype=np.float64)
    if r.shape != a.shape:
        raise ValueError(f"rdp has {r.shape} values for {a.shape} orders")
    with np.errstate(invalid="ignore"):
        eps = r + math.log(1.0 / delta) / (a - 1.0)
    eps = eps[np.isfinite(eps)]
    return float(eps.min()) if eps.size else math.inf


class RDPAccountant:
    """Accumulated Rényi DP over released updates.

    Not thread-safe; the learner that owns it calls it from one thread.
    """

    def __init__(self, orders: Sequence[float] = DEFAULT_ORDERS) -> None:
        if not orders or any(not a > 1.0 for a in orders):
            raise ValueError("orders must be a non-empty sequence of numbers > 1")
        self._orders = tuple(float(a) for a in orders)
        self._rdp = np.zeros(len(self._orders))
        self._steps = 0

    @property
    def orders(self) -> tuple[float, ...]:
        """The tracked RDP orders."""
        return self._orders

    @property
    def steps(self) -> int:
        """How many releases were accounted."""
        return self._steps

    @property
    def rdp(self) -> np.ndarray:
        """The accumulated RDP per order (a copy)."""
        return self._rdp.copy()

    def step(self, noise_multiplier: float, *, sample_rate: float = 1.0, count: int = 1) -> None:
        """Account ``count`` releases of the (sampled) Gaussian mechanism."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if sample_rate >= 1.0:
            per = gaussian_rdp(noise_multiplier, self._orders)
        else:
            per = np.array([sampled_gaussian_rdp(sample_rate, noise_multiplier, a) for a in self._orders])
        self._rdp = self._rdp + count * per
        self._steps += count

    def epsilon(self, delta: float) -> float:
        """eps of everything accounted so far at ``delta``; 0 before any release."""
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if self._steps == 0:
            return 0.0
        return rdp_to_epsilon(self._rdp, self._orders, delta)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints (inf encoded as None)."""
        return {
            "orders": list(self._orders),
            "rdp": [None if not math.isfinite(v) else float(v) for v in self._rdp],
            "steps": self._steps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RDPAccountant:
        """Inverse of :meth:`to_dict`; raises ValueError on malformed data."""
        try:
            acc = cls(tuple(float(a) for a in data["orders"]))
            rdp = [math.inf if v is None else float(v) for v in data["rdp"]]
            steps = int(data["steps"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed accountant state: {exc}") from exc
        if len(rdp) != len(acc._orders) or steps < 0:
            raise ValueError("malformed accountant state: rdp length or steps")
        acc._rdp = np.asarray(rdp, dtype=np.float64)
        acc._steps = steps
        return acc
