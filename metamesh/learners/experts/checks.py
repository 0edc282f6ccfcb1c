"""What an experts node checks in a peer's offset before keeping it, and which problems are the peer's fault.

A problem is a local code (counted per node, in ``rejected``); a problem that
is the sender's fault is charged to it with the reason code of PROTOCOL.md
section 6 (:data:`BLAME`). An offset of another model, base or domain is fine
traffic for other nodes: counted, not merged here, not charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from metamesh.errors import Reason
from metamesh.protocol import Delta

__all__ = ["BLAME", "MAX_SAMPLES", "PeerOffset", "check_offset"]

MAX_SAMPLES = 1 << 40

#: Problems that are the sender's fault -> the reason it is charged with (PROTOCOL.md section 6).
BLAME: Mapping[str, str] = {
    "bad_samples": Reason.INSANE_VALUES.value,
    "tensor_names": Reason.SHAPE_MISMATCH.value,
    "tensor_shape": Reason.SHAPE_MISMATCH.value,
}


@dataclass(slots=True)
class PeerOffset:
    """A peer's latest offset as kept for the next merge."""

    tensors: Mapping[str, np.ndarray]
    samples: int
    arrived: int  # this node's round count when it arrived
    blamed: bool = False  # charged for being an outlier once; it may stay fresh for several rounds


def check_offset(
    body: Delta,
    domain: str,
    *,
    exchange_domain: str,
    model_name: str,
    base_version: int,
    shapes: Mapping[str, tuple[int, ...]],
) -> str:
    """``""`` when ``body`` can be merged here, else the problem (a key of :data:`BLAME` when blamed)."""
    if domain != exchange_domain:
        return "other_domain"
    if body.model != model_name:
        return Reason.OTHER_MODEL.value
    if body.base_version != base_version:
        return "other_base"
    if not 0 < body.samples <= MAX_SAMPLES:
        return "bad_samples"
    if body.tensors.keys() != shapes.keys():
        return "tensor_names"
    for name, array in body.tensors.items():
        if array.dtype != np.float32 or array.shape != shapes[name]:
            return "tensor_shape"
    return ""
