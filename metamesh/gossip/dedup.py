"""Bounded, time-limited memory of message ids already seen, for relay dedup."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["SeenCache"]


class SeenCache:
    """Remembers up to ``capacity`` keys for ``ttl`` seconds each; O(1) per check.

    Oldest entries go first when full, so memory stays bounded under a flood.
    Pure: time is passed in.
    """

    def __init__(self, capacity: int, ttl: float) -> None:
        if capacity < 1 or ttl <= 0:
            raise ValueError("capacity must be >= 1 and ttl > 0")
        self.capacity = capacity
        self.ttl = ttl
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def check_and_add(self, key: Hashable, now: float) -> bool:
        """True if ``key`` is new (and remember it), False if seen within ``ttl``."""
        seen = self._seen
        while seen:
            oldest_key, at = next(iter(seen.items()))
            if now - at < self.ttl and len(seen) < self.capacity:
                break
            del seen[oldest_key]
        if key in seen:
            return False
        seen[key] = now
        return True

    def __len__(self) -> int:
        return len(self._seen)
