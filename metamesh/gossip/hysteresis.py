"""Domain membership as a Schmitt trigger, so a node's domains never flap.

A node joins a domain when its affinity rises above ``enter`` and leaves only
when it falls below ``exit`` (< ``enter``) and at least ``min_dwell`` seconds
have passed since it joined. Pure: affinities and time are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DomainChange", "DomainMembership"]


@dataclass(frozen=True, slots=True)
class DomainChange:
    domain: str
    joined: bool
    affinity: float
    at: float


class DomainMembership:
    def __init__(
        self, *, enter: float, exit: float, min_dwell: float, fixed: frozenset[str] = frozenset()
    ) -> None:
        if not 0 <= exit < enter:
            raise ValueError("need 0 <= exit < enter")
        if min_dwell < 0:
            raise ValueError("min_dwell must be >= 0")
        self.enter = enter
        self.exit = exit
        self.min_dwell = min_dwell
        self.fixed = fixed
        self._joined_at: dict[str, float] = {}

    @property
    def domains(self) -> frozenset[str]:
        return self.fixed | frozenset(self._joined_at)

    def update(self, affinities: Mapping[str, float], now: float) -> list[DomainChange]:
        changes = []
        for domain, affinity in affinities.items():
            if domain in self.fixed:
                continue
            joined_at = self._joined_at.get(domain)
            if joined_at is None and affinity > self.enter:
                self._joined_at[domain] = now
                changes.append(DomainChange(domain, True, affinity, now))
            elif joined_at is not None and affinity < self.exit and now - joined_at >= self.min_dwell:
                del self._joined_at[domain]
                changes.append(DomainChange(domain, False, affinity, now))
        return changes
