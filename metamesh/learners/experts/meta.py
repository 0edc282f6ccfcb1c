"""What a coordinator's meta-parameters mean to an experts node: learning rates and initial weights.

Pure: :func:`read_meta` takes the message and what the node knows and says
what to apply; the node applies it (``ExpertNodeLearner.apply_meta``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from metamesh.protocol import Meta

__all__ = ["MetaReading", "read_meta"]


@dataclass(frozen=True, slots=True)
class MetaReading:
    rates: dict[str, float] = field(default_factory=dict)
    """Learning rates of known groups that differ from the current ones."""
    unknown: tuple[str, ...] = ()
    """Learning-rate groups this model does not have."""
    init: dict[str, np.ndarray] | None = None
    """Initial weights (an offset from w0) to start from, when usable."""
    problem: str = ""
    """Why initial weights given were not usable (``meta_other_base``, ``meta_tensor_shape``)."""


def read_meta(
    meta: Meta,
    *,
    domain: str,
    exchange: str,
    known_rates: Mapping[str, float],
    w0_version: int,
    shapes: Mapping[str, tuple[int, ...]],
    trained: bool,
) -> MetaReading:
    """Rates are params ``DOMAIN:lr.GROUP`` (or ``lr.GROUP`` with ``target`` this domain or ``""``).

    Initial weights are tensors ``EXCHANGE:init.NAME``, an offset from w0 of
    version ``EXCHANGE:init_base``, taken only by a node that has not trained.
    """
    rates = {k[len(domain) + 4 :]: v for k, v in meta.params.items() if k.startswith(f"{domain}:lr.")}
    if meta.target in ("", domain):
        rates.update({k[3:]: v for k, v in meta.params.items() if k.startswith("lr.")})
    unknown = tuple(sorted(set(rates) - set(known_rates)))
    rates = {k: v for k, v in rates.items() if k in known_rates}
    if rates == {k: known_rates[k] for k in rates}:
        rates = {}
    prefix = f"{exchange}:init."
    init = {k[len(prefix) :]: v for k, v in meta.tensors.items() if k.startswith(prefix)}
    if not init or trained:
        return MetaReading(rates, unknown)
    if meta.params.get(f"{exchange}:init_base") != w0_version:
        return MetaReading(rates, unknown, problem="meta_other_base")
    if {n: a.shape for n, a in init.items()} != shapes or any(a.dtype != np.float32 for a in init.values()):
        return MetaReading(rates, unknown, problem="meta_tensor_shape")
    return MetaReading(rates, unknown, init=init)
