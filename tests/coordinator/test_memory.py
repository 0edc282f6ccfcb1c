"""The coordinator's memory: bounds under a flood, oldest first, insight fields only, round trip."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from metamesh.coordinator.memory import InsightMemory, StoredInsight
from metamesh.protocol import Insight


def insight(round_: int = 1, loss: float = 0.5) -> Insight:
    return Insight.of({"expert0": loss, "expert1": 2 * loss}, {"expert0": 10, "expert1": 5}, avg_loss=loss,
                      total_samples=15, round=round_, metrics={"heldout_loss": loss})  # fmt: skip


def test_a_flood_from_many_clients_stays_within_every_bound() -> None:
    mem = InsightMemory(total=500, per_domain=200, per_client=20)
    domains = ["a", "b", "c", "d"]
    for i in range(20_000):
        client = f"c{i % 97}"
        mem.add(StoredInsight.of(client, domains[i % 4], insight(i), at=float(i)))
        if i % 1000 == 0:
            assert len(mem) <= 500
    assert len(mem) <= 500
    assert all(mem.count(domain=d) <= 200 for d in domains)
    assert all(mem.count(client=c) <= 20 for c in mem.clients())
    assert mem.dropped == 20_000 - len(mem)
    # Oldest dropped first: what is left is the newest of each domain.
    kept = [i.round for i in mem.of_domain("a")]
    assert kept == sorted(kept) and kept[-1] == 19_996


def test_one_chatty_client_cannot_crowd_out_the_others() -> None:
    mem = InsightMemory(total=1000, per_domain=1000, per_client=10)
    mem.add(StoredInsight.of("quiet", "a", insight(0), at=0.0))
    for i in range(5000):
        mem.add(StoredInsight.of("loud", "a", insight(i), at=float(i)))
    assert mem.count(client="quiet") == 1 and mem.count(client="loud") == 10
    assert [i.round for i in mem.of_domain("a") if i.client == "loud"] == list(range(4990, 5000))


def test_only_insight_fields_are_stored() -> None:
    stored = StoredInsight.of("n1", "medical", insight(3, 0.25), at=12.0)
    fields = {f.name for f in dataclasses.fields(stored)}
    assert fields == {"client", "domain", "at", "round", "avg_loss", "total_samples", "experts",
                      "expert_loss", "expert_samples", "metrics"}  # fmt: skip
    mem = InsightMemory()
    mem.add(stored)
    state = mem.state()
    # The persisted form is plain numbers and names: no arrays, nothing that could hold samples.
    packed = msgpack.packb(state)
    assert msgpack.unpackb(packed, strict_map_key=False) == state
    assert state["items"] == [["n1", "medical", 12.0, 3, 0.25, 15, ["expert0", "expert1"], [0.25, 0.5],
                               [10, 5], {"heldout_loss": 0.25}]]  # fmt: skip


def test_state_round_trip_restores_the_memory_and_reapplies_bounds() -> None:
    mem = InsightMemory(total=50, per_domain=50, per_client=50)
    for i in range(40):
        mem.add(StoredInsight.of(f"c{i % 3}", "a" if i % 2 else "b", insight(i), at=float(i)))
    restored = InsightMemory(total=50, per_domain=50, per_client=50)
    restored.load_state(mem.state())
    assert [i.to_list() for i in restored.of_domain("a")] == [i.to_list() for i in mem.of_domain("a")]
    smaller = InsightMemory(total=10, per_domain=10, per_client=10)
    smaller.load_state(mem.state())
    assert len(smaller) == 10 and [i.round for i in smaller.of_domain("a")][-1] == 39
    with pytest.raises(ValueError):
        smaller.load_state({"format": 1, "items": [["too", "short"]]})
    with pytest.raises(ValueError):
        InsightMemory(per_client=0)
