"""Meta-parameters from a coordinator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar

import msgspec
import numpy as np

from metamesh.protocol._fields import MAX_ITEMS, Count, Labels, Name, Number, Text, unique
from metamesh.protocol.kinds.base import Body, bad
from metamesh.protocol.limits import Limits

__all__ = ["Meta"]


class Meta(Body, frozen=True, eq=False):
    """Meta-parameters, versioned; ``target`` is a domain or ``""`` for all (names in PROTOCOL.md §4)."""

    KIND: ClassVar[str] = "meta"
    NAMES = ("params", "labels", "tensors")
    ARRAYS = ("tensors",)
    version: Count
    target: Text = ""
    params: Annotated[Mapping[Name, Number], msgspec.Meta(max_length=MAX_ITEMS)] = msgspec.field(
        default_factory=dict
    )
    labels: Annotated[Mapping[Name, Labels], msgspec.Meta(max_length=MAX_ITEMS)] = msgspec.field(
        default_factory=dict
    )
    tensors: Annotated[Mapping[Name, np.ndarray], msgspec.Meta(max_length=MAX_ITEMS)] = msgspec.field(
        default_factory=dict
    )

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        for key, labels in self.labels.items():
            if not unique(labels) or len(labels) > limits.max_list_len:
                raise bad(f"labels.{key}", labels)
