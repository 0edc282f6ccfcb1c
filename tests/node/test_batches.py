"""Batches between nodes on the in-memory twin: coalesced publishes, relayed whole, hostile batches
counted and survived, and direct requests published on the bus never relayed. No sockets."""

from __future__ import annotations

import time

import pytest

from metamesh.node.runtime import Node
from metamesh.protocol import Envelope, Graft, Insight, StatusRequest, encode
from metamesh.protocol.batch import batch_frames
from tests.twin import Twin, eventually, insight

pytestmark = pytest.mark.timeout(60)


async def line(twin: Twin) -> tuple[Node, Node, Node]:
    """a - b - c: a and c reach only b."""
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    c = await twin.node("c", seeds=[b])
    t = twin.transports
    twin.network.partition([t["a"], t["b"]], [t["b"], t["c"]])
    await twin.linked(a, b)
    await twin.linked(b, c)
    return a, b, c


def forged(sender: str, seqs: range, *, domain: str = "math", by: str | None = None) -> list[object]:
    """A batch in ``sender``'s name, its members by ``by`` (default: ``sender`` too)."""
    members = [encode(Envelope(by or sender, seq, domain, insight(0.2), time.time(), hops=3)) for seq in seqs]
    return batch_frames(sender, domain, 3, members)


async def test_what_a_node_publishes_in_one_turn_goes_as_one_batch_relayed_whole(twin: Twin) -> None:
    a, b, c = await line(twin)
    sent_before = a.counters.sent["batch"]
    envs = [a.publish("math", insight(0.1 * i)) for i in range(1, 6)]
    await eventually(lambda: c.latest.get(("a", "insight", "math")) is not None, "c getting a's insights")
    await eventually(lambda: c.counters.received["insight"] >= 5, "all five at c")
    assert a.counters.sent["batch"] == sent_before + 1
    assert b.counters.relayed["batch"] >= 1 and b.counters.relayed["insight"] == 0
    assert c.latest[("a", "insight", "math")].seq == envs[-1].seq
    # What c keeps of a batched insight is a message alone, as a late joiner is served it.
    twin.network.heal()
    late = await twin.node("late", seeds=[c])
    await eventually(lambda: ("a", "insight", "math") in late.latest, "a late joiner served a's insight")


async def test_hostile_batches_are_counted_by_reason_and_the_node_keeps_going(twin: Twin) -> None:
    a = await twin.node("a")
    m = await twin.node("m", seeds=[a])
    await twin.linked(a, m)
    wire = m.transport
    truncated = forged("m", range(10, 13))[:-1]
    wire.publish(truncated)
    await eventually(lambda: a.counters.rejected["bad_batch"] == 1, "the truncated batch refused")
    wire.publish(forged("m", range(20, 23), by="b"))  # m's batch carrying a message in b's name
    await eventually(lambda: a.counters.rejected["bad_batch"] == 2, "the forged member refused")
    wire.publish(forged("m", range(100, 100 + a.config.limits.max_batch + 1)))
    await eventually(lambda: a.counters.rejected["too_many_frames"] == 1, "the oversized batch refused")
    assert ("b", "insight", "math") not in a.latest and ("m", "insight", "math") not in a.latest
    assert a.counters.rejected_by_peer["m"]["bad_batch"] == 1  # the forgery is charged to m
    # and a keeps serving: an honest peer's batch is merged.
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    envs = [b.publish("math", insight(0.5)) for _ in range(3)]
    await eventually(lambda: ("b", "insight", "math") in a.latest, "a merging b's batch")
    assert a.latest[("b", "insight", "math")].seq == envs[-1].seq


async def test_a_replayed_batch_is_dropped_as_duplicates_and_not_relayed(twin: Twin) -> None:
    a, b, c = await line(twin)
    for i in range(3):
        a.publish("math", insight(0.3 + i))
    await eventually(lambda: c.counters.received["insight"] >= 3, "c getting the batch")
    relayed = b.counters.relayed["batch"]
    duplicates = b.counters.dropped["duplicate"]
    kept = b.latest[("a", "insight", "math")]
    # c plays a's batch back to b, member by member as b kept the last one, in a batch of a's.
    c.transport.publish(batch_frames("a", "math", 3, [[b"", *kept.frames]]))
    await eventually(lambda: b.counters.dropped["duplicate"] > duplicates, "b dropping the replay")
    assert b.counters.relayed["batch"] == relayed and b.counters.received["insight"] == 3


@pytest.mark.parametrize("body", [StatusRequest(), Graft()], ids=["status_request", "graft"])
async def test_a_direct_request_published_on_the_bus_is_neither_acted_on_nor_relayed(
    twin: Twin, body: StatusRequest | Graft
) -> None:
    a, b, c = await line(twin)
    env = Envelope(
        "a", a.envelope("math", Insight([], [], [], 0.0, 0)).seq, "math", body, time.time(), hops=3
    )
    a.transport.publish(encode(env))
    kind = body.KIND
    await eventually(lambda: b.counters.dropped[f"unexpected_{kind}"] == 1, f"b dropping the {kind}")
    assert b.counters.relayed[kind] == 0 and c.counters.dropped[f"unexpected_{kind}"] == 0
