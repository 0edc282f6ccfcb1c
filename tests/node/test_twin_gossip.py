"""Nodes gossiping on the in-memory twin: membership, relay, dedup, meshes, requests. No sockets."""

from __future__ import annotations

import pytest

from metamesh.gossip.membership import PeerState
from metamesh.protocol import Delta, Graft, Prune, Status, StatusRequest, encode
from tests.twin import Twin, eventually, insight

pytestmark = pytest.mark.timeout(60)


async def test_a_seeded_node_and_its_seed_become_alive_and_linked(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    assert a.membership.state("b") is PeerState.ALIVE and a.peers["b"].connected
    assert b.status()["peers"]["a"]["state"] == "alive"


async def test_a_published_insight_is_merged_and_kept_by_a_peer(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    env = a.publish("math", insight(0.5))
    await eventually(lambda: ("a", "insight", "math") in b.latest, "b keeping a's insight")
    assert b.latest[("a", "insight", "math")].seq == env.seq
    assert b.counters.received["insight"] == 1


async def test_a_message_is_relayed_to_a_node_not_linked_to_its_author(twin: Twin) -> None:
    a, b, c = await twin.line()
    a.publish("math", insight(0.4))
    await eventually(lambda: ("a", "insight", "math") in c.latest, "c getting a's insight through b")
    assert b.counters.relayed["insight"] == 1 and "a" not in c.transport.linked()


async def test_a_duplicated_message_is_delivered_and_relayed_once(twin: Twin) -> None:
    a, b, c = await twin.line()
    twin.network.faults = type(twin.network.faults)(duplicate=1.0)
    a.publish("math", insight(0.3))
    await eventually(lambda: ("a", "insight", "math") in c.latest, "c getting it")
    await eventually(lambda: c.counters.dropped["duplicate"] >= 1, "c dropping the second copy")
    assert b.counters.received["insight"] == 1 and b.counters.relayed["insight"] == 1
    assert c.counters.received["insight"] == 1


async def test_a_node_drops_its_own_messages_when_they_come_back(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    a.publish("math", insight(0.2))
    await eventually(lambda: b.counters.relayed["insight"] == 1, "b relaying it")
    await eventually(lambda: a.counters.dropped["duplicate"] >= 1, "a dropping its own relayed copy")
    assert a.counters.received["insight"] == 0


async def test_a_node_outside_a_domain_does_not_receive_its_traffic(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", domains=["art"], seeds=[a])
    await twin.linked(a, b)
    a.publish("math", insight(0.2))
    heartbeats = b.counters.received["heartbeat"]
    await eventually(lambda: b.counters.received["heartbeat"] > heartbeats + 2, "a few heartbeats after it")
    assert b.counters.received["insight"] == 0 and not b.latest


async def test_an_older_message_from_a_sender_is_neither_kept_nor_relayed(twin: Twin) -> None:
    a, b, c = await twin.line()
    older = a.envelope("math", insight(0.9))  # a sequence number taken, published later
    newer = a.publish("math", insight(0.1))
    await eventually(lambda: ("a", "insight", "math") in c.latest, "the newer one at c")
    a.transport.publish(encode(older))
    await eventually(lambda: b.counters.dropped["stale"] == 1, "b dropping the older one")
    assert b.latest[("a", "insight", "math")].seq == newer.seq and b.counters.relayed["insight"] == 1


async def test_a_bye_removes_a_peer_at_once(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    import time

    await b.stop()
    stopped = time.monotonic()
    await eventually(lambda: "b" not in a.membership.alive(), "a forgetting b")
    assert time.monotonic() - stopped < a.config.suspect_after  # not by silence: by the bye


async def test_a_cut_peer_goes_suspect_then_dead_and_is_back_once_healed(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    twin.network.partition([twin.transports["a"]], [twin.transports["b"]])
    await eventually(lambda: a.membership.state("b") is PeerState.SUSPECT, "b suspect")
    await eventually(lambda: a.membership.state("b") is PeerState.DEAD, "b dead")
    twin.network.heal()
    await eventually(lambda: a.membership.state("b") is PeerState.ALIVE, "b alive again (probed)", 20)


async def test_meshes_stay_within_their_degree_band(twin: Twin) -> None:
    band = {"mesh_d": 2, "mesh_d_lo": 1, "mesh_d_hi": 3}
    first = await twin.node("n0", **band)
    nodes = [first] + [await twin.node(f"n{i}", seeds=[first], **band) for i in range(1, 6)]
    await eventually(lambda: all(len(n.membership.alive()) == 5 for n in nodes), "everyone alive", 40)
    await eventually(lambda: all(n.transport.linked() for n in nodes), "every node linked to someone", 40)
    # Meshes of degree 2 to 3 span the six nodes: a publish reaches all, relayed where not linked.
    await eventually(
        lambda: all(len(n.transport.linked()) <= 4 for n in nodes),
        "links within the band (_global and math)",
        40,
    )
    sent = []

    def everywhere() -> bool:
        if not sent or len(sent) % 50 == 0:  # a mesh still settling may miss one; a keepalive repairs it
            nodes[3].publish("math", insight(0.1 * len(sent)))
        sent.append(1)
        return all(("n3", "insight", "math") in n.latest for n in nodes if n is not nodes[3])

    await eventually(everywhere, "n3's insight at every node", 40)


async def test_a_graft_in_a_domain_the_peer_is_not_in_is_answered_with_a_prune(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    [reply] = await b.request(a.router_endpoint, Graft(), timeout=5, domain="art")
    assert isinstance(reply.body, Prune) and reply.body.backoff > 0
    [accepted] = await b.request(a.router_endpoint, Graft(), timeout=5, domain="math")
    assert isinstance(accepted.body, Graft)


async def test_status_is_served_over_the_twin(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    [reply] = await b.request(a.router_endpoint, StatusRequest(), timeout=5)
    assert isinstance(reply.body, Status) and reply.body.report["node"] == "a"


async def test_a_large_delta_is_relayed_lazily_by_ihave_and_fetched(twin: Twin) -> None:
    import numpy as np

    settings = {"lazy_relay_bytes": 1024}
    a = await twin.node("a", **settings)
    b = await twin.node("b", seeds=[a], **settings)
    c = await twin.node("c", seeds=[b], **settings)
    t = twin.transports
    twin.network.partition([t["a"], t["b"]], [t["b"], t["c"]])
    await twin.linked(a, b)
    await twin.linked(b, c)
    a.publish("math", Delta("m", {"w": np.ones(4096, np.float32)}, 0, 10))
    await eventually(lambda: ("a", "delta", "math") in c.latest, "c fetching the delta b announced")
    assert c.counters.received["ihave"] >= 1 and c.counters.received["fetched"] == 1


async def test_gossip_gets_through_a_lossy_wire(twin: Twin) -> None:
    from metamesh.gossip.memory import Faults

    a, _, c = await twin.line()
    twin.network.faults = Faults(drop=0.3)
    sent = 0

    def arrived() -> bool:
        nonlocal sent
        if ("a", "insight", "math") not in c.latest:
            a.publish("math", insight(0.1 * (sent % 5)))  # send on change: a keepalive repairs a loss
            sent += 1
            return False
        return True

    await eventually(arrived, "one of a's insights at c despite 30% loss")
