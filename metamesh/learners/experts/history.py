"""The model version registry of one learner: which merge made which version (no torch).

Seed 002's "model version registry and update history", kept bounded: a
learner appends one :class:`MergeRecord` per applied average and keeps the
last ``maxlen``. Timestamps are passed in by the caller, so this module never
reads a clock and tests are deterministic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MergeRecord", "VersionHistory"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeRecord:
    """One applied average: the model went from ``base_version`` to ``version``.

    ``contributors`` are the node ids whose deltas were averaged; ``at`` is
    the caller's timestamp (seconds); losses are held-out losses right before
    and right after the merge.
    """

    version: int
    base_version: int
    contributors: tuple[str, ...]
    at: float
    loss_before: float
    loss_after: float

    @property
    def improvement(self) -> float:
        """``loss_before - loss_after``: positive when the merge helped."""
        return self.loss_before - self.loss_after

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings)."""
        return {
            "version": self.version,
            "base_version": self.base_version,
            "contributors": list(self.contributors),
            "at": self.at,
            "loss_before": self.loss_before,
            "loss_after": self.loss_after,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MergeRecord:
        """Inverse of :meth:`to_dict`; raises ValueError on malformed data."""
        try:
            contributors = data["contributors"]
            if isinstance(contributors, str) or not all(isinstance(c, str) for c in contributors):
                raise TypeError("contributors must be a list of strings")
            return cls(
                version=int(data["version"]),
                base_version=int(data["base_version"]),
                contributors=tuple(contributors),
                at=float(data["at"]),
                loss_before=float(data["loss_before"]),
                loss_after=float(data["loss_after"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed merge record: {exc}") from exc


class VersionHistory:
    """The last ``maxlen`` merge records, oldest first, versions strictly increasing."""

    def __init__(self, *, maxlen: int = 256) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self._records: deque[MergeRecord] = deque(maxlen=maxlen)

    @property
    def maxlen(self) -> int:
        """The bound on kept records."""
        return self._records.maxlen or 0

    @property
    def latest(self) -> MergeRecord | None:
        """The newest record, or None when nothing was merged yet."""
        return self._records[-1] if self._records else None

    def record(self, rec: MergeRecord) -> None:
        """Append ``rec``, dropping the oldest when full.

        Raises ValueError if ``rec.version`` does not exceed the latest
        version or the loss after the merge is not finite. The loss before
        may be: a merge is how a model that diverged gets back.
        """
        last = self.latest
        if last is not None and rec.version <= last.version:
            raise ValueError(f"version {rec.version} does not follow the latest version {last.version}")
        if not math.isfinite(rec.loss_after):
            raise ValueError("the loss after a merge must be finite")
        self._records.append(rec)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[MergeRecord]:
        return iter(tuple(self._records))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints."""
        return {"maxlen": self.maxlen, "records": [r.to_dict() for r in self._records]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionHistory:
        """Inverse of :meth:`to_dict`; raises ValueError on malformed data."""
        try:
            hist = cls(maxlen=int(data["maxlen"]))
            records = data["records"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed version history: {exc}") from exc
        for rec in records:
            hist.record(MergeRecord.from_dict(rec))
        return hist
