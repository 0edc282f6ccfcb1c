"""The coordinator's global memory: insights only, bounded in total, per domain and per client.

Seed 001's server keeps every insight it is sent; a coordinator that any node
may flood cannot. Three bounds, each dropping the oldest first: per client
(one chatty node cannot crowd out the others), per domain, and in total.
What is stored is the insight's fields (per-expert loss and samples, average
loss, sample count, round, metrics), never anything else: insights carry no
samples, and nothing else is accepted.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from metamesh.protocol import Insight

__all__ = ["InsightMemory", "StoredInsight"]

STATE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class StoredInsight:
    """One insight as the coordinator keeps it."""

    client: str
    domain: str
    at: float
    round: int
    avg_loss: float
    total_samples: int
    experts: tuple[str, ...]
    expert_loss: tuple[float, ...]
    expert_samples: tuple[int, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, client: str, domain: str, insight: Insight, at: float) -> StoredInsight:
        return cls(
            client,
            domain,
            float(at),
            int(insight.round),
            float(insight.avg_loss),
            int(insight.total_samples),
            tuple(insight.experts),
            tuple(float(x) for x in insight.loss),
            tuple(int(x) for x in insight.samples),
            dict(insight.metrics),
        )

    def to_list(self) -> list[Any]:
        head = [self.client, self.domain, self.at, self.round, self.avg_loss, self.total_samples]
        return [
            *head,
            list(self.experts),
            list(self.expert_loss),
            list(self.expert_samples),
            dict(self.metrics),
        ]

    @classmethod
    def from_list(cls, row: list[Any]) -> StoredInsight:
        c, d, at, rnd, avg, total, experts, loss, samples, metrics = row
        return cls(str(c), str(d), float(at), int(rnd), float(avg), int(total), tuple(map(str, experts)),
                   tuple(map(float, loss)), tuple(map(int, samples)),
                   {str(k): float(v) for k, v in metrics.items()})  # fmt: skip


class InsightMemory:
    """Bounded insight store, partitioned by domain and by client; oldest dropped first."""

    def __init__(self, *, total: int = 100_000, per_domain: int = 20_000, per_client: int = 500) -> None:
        if min(total, per_domain, per_client) < 1:
            raise ValueError("memory bounds must be >= 1")
        self.total, self.per_domain, self.per_client = total, per_domain, per_client
        self._reset()

    def _reset(self) -> None:
        self._items: dict[int, StoredInsight] = {}  # insertion order is age order
        self._by_client: dict[str, deque[int]] = {}
        self._by_domain: dict[str, deque[int]] = {}
        self._clients: Counter[str] = Counter()
        self._domains: Counter[str] = Counter()
        self._ids = itertools.count()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: StoredInsight) -> None:
        key = next(self._ids)
        self._items[key] = item
        self._by_client.setdefault(item.client, deque()).append(key)
        self._by_domain.setdefault(item.domain, deque()).append(key)
        self._clients[item.client] += 1
        self._domains[item.domain] += 1
        while self._clients[item.client] > self.per_client:
            self._evict(self._oldest(self._by_client[item.client]))
        while self._domains[item.domain] > self.per_domain:
            self._evict(self._oldest(self._by_domain[item.domain]))
        while len(self._items) > self.total:
            self._evict(next(iter(self._items)))

    def _oldest(self, keys: deque[int]) -> int:
        while keys[0] not in self._items:  # evicted through another partition
            keys.popleft()
        return keys[0]

    def _evict(self, key: int) -> None:
        item = self._items.pop(key)
        self.dropped += 1
        for counts, index, name in (
            (self._clients, self._by_client, item.client),
            (self._domains, self._by_domain, item.domain),
        ):
            counts[name] -= 1
            keys = index[name]
            if not counts[name]:
                del counts[name], index[name]
            elif len(keys) > 2 * counts[name] + 16:  # compact ids evicted through the other partition
                index[name] = deque(k for k in keys if k in self._items)

    def domains(self) -> list[str]:
        return sorted(self._domains)

    def clients(self, domain: str | None = None) -> list[str]:
        if domain is None:
            return sorted(self._clients)
        return sorted({i.client for i in self.of_domain(domain)})

    def of_domain(self, domain: str) -> Iterator[StoredInsight]:
        """The domain's insights, oldest first."""
        for key in self._by_domain.get(domain, ()):
            item = self._items.get(key)
            if item is not None:
                yield item

    def count(self, *, domain: str | None = None, client: str | None = None) -> int:
        if domain is not None:
            return self._domains.get(domain, 0)
        if client is not None:
            return self._clients.get(client, 0)
        return len(self._items)

    def state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "items": [i.to_list() for i in self._items.values()],
                "dropped": self.dropped}  # fmt: skip

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned (re-applying the bounds). Raises ValueError if malformed."""
        try:
            if state["format"] != STATE_FORMAT:
                raise ValueError(f"unsupported memory format {state['format']!r}")
            items = [StoredInsight.from_list(list(row)) for row in state["items"]]
            dropped = int(state.get("dropped", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed memory state: {exc!r}") from exc
        self._reset()
        for item in items:
            self.add(item)
        self.dropped += dropped
