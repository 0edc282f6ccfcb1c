"""Batches between nodes on the in-memory twin: coalesced publishes, relayed whole, hostile batches
counted and survived, signed batches and their members' proofs served to late joiners, and direct
requests published on the bus never relayed. No sockets."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import pytest

from metamesh.gossip.keys import generate_keys, load_keys
from metamesh.gossip.signing import OriginSigner
from metamesh.node.runtime import Node
from metamesh.protocol import Envelope, Graft, Insight, StatusRequest, encode
from metamesh.protocol.batch import BATCH_MAX, batch_frames
from metamesh.protocol.proof import member_digest
from tests.twin import Twin, eventually, insight

pytestmark = pytest.mark.timeout(60)


def forged(sender: str, seqs: range, *, domain: str = "math", by: str | None = None) -> list[object]:
    """A batch in ``sender``'s name, its members by ``by`` (default: ``sender`` too)."""
    members = [encode(Envelope(by or sender, seq, domain, insight(0.2), time.time(), hops=3)) for seq in seqs]
    return batch_frames(sender, domain, 3, members)


async def test_what_a_node_publishes_in_one_turn_goes_as_one_batch_relayed_whole(twin: Twin) -> None:
    a, b, c = await twin.line()
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
    a, b, c = await twin.line()
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
    a, b, c = await twin.line()
    env = Envelope(
        "a", a.envelope("math", Insight([], [], [], 0.0, 0)).seq, "math", body, time.time(), hops=3
    )
    a.transport.publish(encode(env))
    kind = body.KIND
    await eventually(lambda: b.counters.dropped[f"unexpected_{kind}"] == 1, f"b dropping the {kind}")
    assert b.counters.relayed[kind] == 0 and c.counters.dropped[f"unexpected_{kind}"] == 0


def keyed(root: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """A keys directory per node, each authorizing every other's signing key."""
    dirs = {n: root / f"keys-{n}" for n in names}
    for d in dirs.values():
        generate_keys(d)
    for trusting, d in dirs.items():
        for trusted, other in dirs.items():
            if trusted != trusting:
                (d / "authorized" / f"{trusted}.key").write_text((other / "node.key").read_text())
    return dirs


async def signed_line(twin: Twin, tmp_path: Path) -> tuple[Node, Node, Node, dict[str, Path]]:
    keys = keyed(tmp_path, ("a", "b", "c", "late"))
    a = await twin.node("a", keys=keys["a"])
    b = await twin.node("b", seeds=[a], keys=keys["b"])
    c = await twin.node("c", seeds=[b], keys=keys["c"])
    t = twin.transports
    twin.network.partition([t["a"], t["b"]], [t["b"], t["c"]])
    await twin.linked(a, b)
    await twin.linked(b, c)
    return a, b, c, keys


async def test_a_signed_batch_is_signed_once_and_its_members_proofs_serve_late_joiners(
    twin: Twin, tmp_path: Path
) -> None:
    a, b, c, keys = await signed_line(twin, tmp_path)
    sent = a.counters.sent["batch"]
    envs = [a.publish("math", insight(0.1 * i)) for i in range(1, 6)]
    await eventually(lambda: c.counters.received["insight"] >= 5, "all five at c, through b")
    assert a.counters.sent["batch"] == sent + 1 and b.counters.relayed["batch"] >= 1
    for node in (a, b, c):  # kept with its proof: member header, batch header, batch signature
        kept = node.latest[("a", "insight", "math")]
        assert kept.seq == envs[-1].seq and len(kept.frames) == 3, node.id
        assert member_digest(kept.frames[0]) in msgpack.unpackb(bytes(kept.frames[1]))["h"]
    one = a.publish("math", insight(0.9))  # alone in its turn: sent, and kept, signed alone
    await eventually(lambda: c.latest[("a", "insight", "math")].seq == one.seq, "c getting the lone one")
    assert (
        len(c.latest[("a", "insight", "math")].frames) == len(a.latest[("a", "insight", "math")].frames) == 2
    )
    twin.network.heal()
    late = await twin.node("late", seeds=[c], keys=keys["late"])
    await eventually(lambda: ("a", "insight", "math") in late.latest, "a late joiner verifying a's proof")
    assert late.counters.rejected["bad_signature"] == 0


async def test_tampered_signed_batches_and_proofs_are_counted_and_nobody_is_charged(
    twin: Twin, tmp_path: Path
) -> None:
    a, b, c, keys = await signed_line(twin, tmp_path)
    a_signer = OriginSigner(load_keys(keys["a"]).sign_secret or b"")
    seqs = [a.envelope("math", insight(0.0)).seq for _ in range(3)]
    members = [
        encode(Envelope("a", n, "math", insight(0.2), time.time(), hops=3), by_batch=True) for n in seqs
    ]
    genuine = batch_frames("a", "math", 3, members, signer=a_signer)
    altered = list(genuine)
    altered[3] = encode(Envelope("a", seqs[1], "math", insight(9.0), time.time(), hops=3), by_batch=True)[1]
    c.transport.publish(altered)  # a member not matching its digest
    await eventually(lambda: b.counters.rejected["bad_signature"] == 1, "b refusing the altered member")
    head = msgpack.unpackb(genuine[1])
    head["h"][1] = member_digest(altered[3])
    c.transport.publish([genuine[0], msgpack.packb(head), *altered[2:]])  # a forged digest list
    await eventually(lambda: b.counters.rejected["bad_signature"] == 2, "b refusing the forged digests")
    wrong = OriginSigner(bytes(32))((genuine[1],))
    c.transport.publish([*genuine[:-1], wrong])  # a wrong batch signature
    await eventually(lambda: b.counters.rejected["bad_signature"] == 3, "b refusing the wrong signature")
    assert "a" not in b.counters.rejected_by_peer and "c" not in b.counters.rejected_by_peer
    assert ("a", "insight", "math") not in b.latest and b.counters.relayed["batch"] == 0
    # The genuine batch is accepted once, relayed once; played again it is dropped as duplicates.
    c.transport.publish(genuine)
    await eventually(lambda: b.latest.get(("a", "insight", "math")) is not None, "b taking the genuine one")
    duplicates, relayed = b.counters.dropped["duplicate"], b.counters.relayed["batch"]
    c.transport.publish(genuine)
    await eventually(lambda: b.counters.dropped["duplicate"] >= duplicates + 3, "b dropping the replay")
    assert b.counters.relayed["batch"] == relayed and b.counters.rejected["bad_signature"] == 3


async def test_own_state_in_a_batch_sent_while_publishing_is_kept_with_its_proof(
    twin: Twin, tmp_path: Path
) -> None:
    keys = keyed(tmp_path, ("a",))
    a = await twin.node("a", keys=keys["a"])
    sent = a.counters.sent["batch"]
    for i in range(BATCH_MAX):  # the last publish fills the batch, which goes out at once
        a.publish("math", insight(0.01 * i))
    assert a.counters.sent["batch"] == sent + 1
    kept = a.latest[("a", "insight", "math")]
    assert len(kept.frames) == 3 and member_digest(kept.frames[0]) in msgpack.unpackb(kept.frames[1])["h"]
