"""Synthetic domain tasks and the user data loader (numpy only).

The synthetic tasks are non-IID by construction, in two ways:

* **Concept shift between domains.** Every domain shares one input space
  (``N_FEATURES`` features drawn from the same mixture of Gaussian regions)
  but has its own ground-truth function: a random two-layer tanh network
  (8 -> 16 -> 1, input gain 1.6) seeded by the domain *name* (SHA-256),
  normalised to zero mean and unit variance on a fixed reference sample. The
  built-in ``DOMAINS`` are also decorrelated from each other (Gram-Schmidt,
  in list order, on that sample), so a model averaged across them can only
  learn their mean and loses about 2/3 of the variance of each.
* **Covariate shift within a domain.** Node ``i`` of a domain samples its
  training inputs from region ``i % regions`` only (default ``N_REGIONS``
  regions around orthogonal centres 2.8 apart, spread 0.55), with its own
  label noise level, while its test set samples the *whole* domain
  distribution (all regions equally) without noise. A node alone fits its
  region and extrapolates badly; nodes of one domain that average their
  updates cover every region.

Everything is deterministic: the function depends on the domain name only,
the regions on nothing, and the samples on
``(seed, domain, node_index, regions)``.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from metamesh.errors import ConfigError

__all__ = [
    "DOMAINS",
    "N_FEATURES",
    "N_REGIONS",
    "NodeData",
    "domain_function",
    "hold_out",
    "load_user_data",
    "make_node_data",
    "node_noise",
    "region_centers",
]

log = logging.getLogger(__name__)

DOMAINS: tuple[str, ...] = ("economic", "medical", "technology")
"""The synthetic domains the demo and experiments use; any name works."""

N_FEATURES = 8
N_REGIONS = 4
_HIDDEN = 16  # hidden units of the ground-truth network
_GAIN = 1.6  # input gain of the ground-truth network: how nonlinear it is
_RADIUS = 2.0  # distance of every region centre from the origin
_REGION_STD = 0.55  # spread of one region
_NOISE_LEVELS = (0.05, 0.15, 0.1, 0.25, 0.2)  # label noise std by node index (cycled)
_PROBE_SAMPLES = 8192
_REGIONS_SEED = 20_240_601


@dataclass(frozen=True, slots=True)
class NodeData:
    """One node's private data: a training set and a held-out test set.

    ``x_*`` are float32 ``(n, n_features)``, ``y_*`` float32 ``(n,)``.
    ``shares`` maps domain names to the share of the node's samples from
    each domain (user data may mix domains); ``None`` means all of
    ``domain``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    domain: str
    shares: Mapping[str, float] | None = field(default=None)

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.x_train.shape[1])

    def affinity(self) -> dict[str, float]:
        """Domain → share of this node's samples, for domain membership."""
        if self.shares is None:
            return {self.domain: 1.0}
        return dict(self.shares)


def _name_seed(*parts: str | int) -> int:
    """A stable 64-bit seed from strings and ints (Python's ``hash`` is salted)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


@lru_cache(maxsize=1)
def _all_centers() -> np.ndarray:
    rng = np.random.default_rng(_REGIONS_SEED)
    q, _ = np.linalg.qr(rng.standard_normal((N_FEATURES, N_FEATURES)))
    centers = np.ascontiguousarray(q.T * _RADIUS)
    centers.setflags(write=False)
    return centers


def region_centers(regions: int = N_REGIONS) -> np.ndarray:
    """The ``(regions, N_FEATURES)`` region centres, shared by every domain.

    Orthogonal directions at distance ``_RADIUS`` from the origin (pairwise
    distance ``_RADIUS * sqrt(2)`` ≈ 2.8, five region spreads); the first
    ``k`` centres are the same whatever ``regions`` is. Raises ValueError
    unless ``1 <= regions <= N_FEATURES``.
    """
    if not 1 <= regions <= N_FEATURES:
        raise ValueError(f"regions must be in [1, {N_FEATURES}], got {regions}")
    out: np.ndarray = _all_centers()[:regions]
    return out


def _sample_region(rng: np.random.Generator, center: np.ndarray, n: int) -> np.ndarray:
    out: np.ndarray = center + _REGION_STD * rng.standard_normal((n, N_FEATURES))
    return out


def _sample_domain(rng: np.random.Generator, n: int, regions: int) -> np.ndarray:
    """Inputs from the whole domain distribution: an equal mixture of the regions."""
    picks = rng.integers(0, regions, size=n)
    out: np.ndarray = region_centers(regions)[picks] + _REGION_STD * rng.standard_normal((n, N_FEATURES))
    return out


@lru_cache(maxsize=1)
def _probe() -> np.ndarray:
    """The fixed reference sample (default regions) that defines normalisation and correlation."""
    rng = np.random.default_rng(_name_seed("metamesh.experts.probe"))
    return _sample_domain(rng, _PROBE_SAMPLES, N_REGIONS)


@dataclass(frozen=True, slots=True)
class _Truth:
    """``(net(x) - sum_j coef_j * prev_j(x) - mean) / std`` with ``net`` a random tanh network."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    prev: tuple[_Truth, ...]
    coef: tuple[float, ...]
    mean: float
    std: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raw: np.ndarray = np.tanh(x @ self.w1 + self.b1) @ self.w2
        for c, f in zip(self.coef, self.prev, strict=True):
            raw = raw - c * f(x)
        out: np.ndarray = (raw - self.mean) / self.std
        return out


@lru_cache(maxsize=64)
def _truth(domain: str) -> _Truth:
    rng = np.random.default_rng(_name_seed("metamesh.experts.truth", domain))
    w1 = rng.standard_normal((N_FEATURES, _HIDDEN)) * (_GAIN / math.sqrt(N_FEATURES))
    b1 = rng.standard_normal(_HIDDEN) * 0.5
    w2 = rng.standard_normal(_HIDDEN) / math.sqrt(_HIDDEN)
    # Built-in domains are decorrelated from the ones listed before them (Gram-Schmidt on the probe).
    prev = tuple(_truth(d) for d in DOMAINS[: DOMAINS.index(domain)]) if domain in DOMAINS else ()
    probe = _probe()
    raw = np.tanh(probe @ w1 + b1) @ w2
    coef = []
    for f in prev:
        fv = f(probe)
        c = float(np.dot(raw - raw.mean(), fv) / np.dot(fv, fv))
        raw = raw - c * fv
        coef.append(c)
    return _Truth(w1, b1, w2, prev, tuple(coef), float(raw.mean()), float(raw.std()) or 1.0)


def domain_function(domain: str, x: np.ndarray) -> np.ndarray:
    """The noiseless ground truth of ``domain`` at inputs ``x`` of shape ``(n, N_FEATURES)``.

    Raises ValueError if ``x`` has the wrong shape.
    """
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise ValueError(f"x must have shape (n, {N_FEATURES}), got {x.shape}")
    return _truth(domain)(np.asarray(x, dtype=np.float64))


def node_noise(node_index: int) -> float:
    """Label noise std of node ``node_index`` (nodes differ in data quality)."""
    return _NOISE_LEVELS[node_index % len(_NOISE_LEVELS)]


def make_node_data(
    domain: str, node_index: int, *, n_train: int, n_test: int, seed: int, regions: int = N_REGIONS
) -> NodeData:
    """Training data from region ``node_index % regions`` of ``domain``; test data from all regions.

    Training labels carry Gaussian noise of std ``node_noise(node_index)``;
    test labels are noiseless, so the held-out loss measures how well a model
    knows the domain's function everywhere. Give ``regions`` the number of
    nodes per domain when there are fewer than ``N_REGIONS`` of them, so the
    domain together covers its distribution. Deterministic in all arguments.
    Raises ConfigError for an empty domain name, a negative node index,
    non-positive sizes or ``regions`` outside ``[1, N_FEATURES]``.
    """
    if not domain:
        raise ConfigError("domain must be a non-empty name")
    if node_index < 0:
        raise ConfigError(f"node_index must be >= 0, got {node_index}")
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    if not 1 <= regions <= N_FEATURES:
        raise ConfigError(f"regions must be in [1, {N_FEATURES}], got {regions}")
    rng = np.random.default_rng(_name_seed("metamesh.experts.data", seed, domain, node_index, regions))
    truth = _truth(domain)
    x_train = _sample_region(rng, region_centers(regions)[node_index % regions], n_train)
    y_train = truth(x_train) + node_noise(node_index) * rng.standard_normal(n_train)
    x_test = _sample_domain(rng, n_test, regions)
    y_test = truth(x_test)
    log.debug("made data for %s node %d: %d train, %d test", domain, node_index, n_train, n_test)
    return NodeData(_f32(x_train), _f32(y_train), _f32(x_test), _f32(y_test), domain)


def hold_out(data: NodeData, fraction: float, seed: int) -> tuple[NodeData, np.ndarray, np.ndarray]:
    """Split a validation set off ``data``'s training set (a seeded shuffle): ``(rest, x_val, y_val)``.

    The test set is untouched; at least one sample stays on each side. Raises
    ConfigError unless ``0 < fraction < 1`` and there are 2 training samples.
    """
    n = len(data.y_train)
    if not 0.0 < fraction < 1.0 or n < 2:
        raise ConfigError(f"a validation split needs 0 < fraction < 1 and 2+ samples, got {fraction}, {n}")
    order = np.random.default_rng(_name_seed("metamesh.experts.validation", seed)).permutation(n)
    k = min(n - 1, max(1, round(n * fraction)))
    val, rest = order[:k], order[k:]
    kept = NodeData(
        data.x_train[rest], data.y_train[rest], data.x_test, data.y_test, data.domain, data.shares
    )
    return kept, data.x_train[val], data.y_train[val]


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


# --------------------------------------------------------------------------- user data


def load_user_data(path: str | Path, *, test_fraction: float = 0.2, seed: int = 0) -> NodeData:
    """Load a user's own data from CSV or NPZ and split it into train and test.

    CSV: a header row; a ``target`` column, a ``domain`` column, and every
    other column a numeric feature. NPZ: arrays ``x`` ``(n, f)``, ``y``
    ``(n,)`` and ``domain`` (one string, or one per row); loaded with
    ``allow_pickle=False``. The split is a seeded shuffle; ``domain`` of the
    result is the most common domain and ``shares`` the share of each.

    Raises ConfigError naming the file and the reason for any problem.
    """
    p = Path(path)
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"{p}: test_fraction must be in (0, 1), got {test_fraction}")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        x, y, domains = _read_csv(p)
    elif suffix == ".npz":
        x, y, domains = _read_npz(p)
    else:
        raise ConfigError(f"{p}: unsupported file type {suffix!r} (use .csv or .npz)")
    n = len(y)
    if n < 2:
        raise ConfigError(f"{p}: need at least 2 rows to split into train and test, got {n}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigError(f"{p}: features and target must be finite numbers")
    if any(not d for d in domains):
        raise ConfigError(f"{p}: every row needs a non-empty domain")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    counts = Counter(domains)
    shares = {d: c / n for d, c in sorted(counts.items())}
    major = max(sorted(counts), key=lambda d: counts[d])
    log.info("loaded %d rows, %d features, domains %s from %s", n, x.shape[1], shares, p)
    return NodeData(_f32(x[train]), _f32(y[train]), _f32(x[test]), _f32(y[test]), major, shares)


def _read_csv(p: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{p}: cannot read CSV: {exc}") from exc
    if not rows:
        raise ConfigError(f"{p}: empty file")
    header = [h.strip() for h in rows[0]]
    for column in ("target", "domain"):
        if header.count(column) != 1:
            raise ConfigError(f"{p}: need exactly one {column!r} column, header is {header}")
    t_col, d_col = header.index("target"), header.index("domain")
    f_cols = [i for i in range(len(header)) if i not in (t_col, d_col)]
    if not f_cols:
        raise ConfigError(f"{p}: no feature columns besides 'target' and 'domain'")
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    x = np.empty((len(body), len(f_cols)), dtype=np.float64)
    y = np.empty(len(body), dtype=np.float64)
    domains: list[str] = []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ConfigError(f"{p}: line {line} has {len(row)} fields, header has {len(header)}")
        try:
            x[line - 2] = [float(row[i]) for i in f_cols]
            y[line - 2] = float(row[t_col])
        except ValueError as exc:
            raise ConfigError(f"{p}: line {line}: not a number: {exc}") from exc
        domains.append(row[d_col].strip())
    return x, y, domains


def _read_npz(p: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = {"x", "y", "domain"} - set(z.files)
            if missing:
                raise ConfigError(f"{p}: missing arrays {sorted(missing)} (need x, y, domain)")
            x, y, dom = z["x"], z["y"], z["domain"]
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{p}: cannot read NPZ: {exc}") from exc
    if x.ndim != 2 or x.shape[1] < 1 or x.dtype.kind not in "fiu":
        raise ConfigError(f"{p}: x must be a 2-D numeric array, got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "fiu":
        raise ConfigError(f"{p}: y must be a 1-D numeric array of length {len(x)}, got {y.dtype} {y.shape}")
    if dom.dtype.kind != "U" or dom.ndim > 1 or (dom.ndim == 1 and len(dom) != len(x)):
        raise ConfigError(
            f"{p}: domain must be one string or one string per row, got {dom.dtype} {dom.shape}"
        )
    domains = [str(dom)] * len(x) if dom.ndim == 0 else [str(d) for d in dom]
    return x.astype(np.float64), y.astype(np.float64), domains
