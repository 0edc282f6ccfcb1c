"""Member gossip: the table's merge rules, digest and news queue (pure), and nodes on the twin
that know every member although heartbeats reach mesh neighbours only."""

from __future__ import annotations

import random
from typing import Any

import pytest

from metamesh.gossip.membership import MemberRow, Membership, MembershipConfig, MemberTable, PeerState
from metamesh.gossip.mesh import Mesh, MeshConfig
from metamesh.gossip.meshing import SHARED_OWN, Meshes, split_band
from metamesh.node.runtime import Node
from tests.twin import Twin, eventually

pytestmark = pytest.mark.timeout(90)

ALIVE, SUSPECT, DEAD = PeerState.ALIVE, PeerState.SUSPECT, PeerState.DEAD


def row(peer: str, inc: int, state: PeerState = ALIVE, domains: tuple[str, ...] = ()) -> MemberRow:
    return MemberRow(peer, f"tcp://127.0.0.1:{1000 + len(peer)}", "tcp://127.0.0.1:2000", inc, state, domains)


def table(me: str = "me", inc: int = 10) -> MemberTable:
    return MemberTable(row(me, inc))


def test_a_higher_incarnation_wins_and_at_equal_ones_suspect_then_dead_win() -> None:
    t = table()
    assert t.merge(row("a", 1)) is not None
    assert t.merge(row("a", 1)) is None  # nothing new
    assert t.merge(row("a", 1, SUSPECT)) is not None and t.rows["a"].state is SUSPECT
    assert t.merge(row("a", 1, ALIVE)) is None  # alive at the same incarnation does not clear it
    assert t.merge(row("a", 1, DEAD)) is not None and t.rows["a"].state is DEAD
    assert t.merge(row("a", 0, ALIVE)) is None  # an older incarnation never resurrects
    assert t.merge(row("a", 2, ALIVE)) is not None and t.rows["a"].state is ALIVE
    assert t.merge(row("b", 5, DEAD)) is None and "b" not in t.rows  # a stranger told dead is not added


def test_a_member_refutes_a_suspicion_of_itself_with_a_higher_incarnation() -> None:
    t = table(inc=10)
    t.news(100)  # our own first announcement
    t.merge(row("me", 10, SUSPECT))
    assert t.me.inc == 11 and t.me.state is ALIVE
    assert [r.id for r in t.news(8)] == ["me"]  # the refutation is queued
    t.merge(row("me", 3, DEAD))  # an old rumour: nothing to refute
    assert t.me.inc == 11


def test_the_digest_depends_on_the_members_held_not_on_the_order_they_came() -> None:
    rows = [row(f"p{i}", i) for i in range(50)]
    a, b = table(), table()
    for r in rows:
        a.merge(r)
    for r in random.Random(3).sample(rows, len(rows)):
        b.merge(r)
    assert a.digest() == b.digest() and a.size() == 51
    b.merge(row("p7", 7, SUSPECT))
    assert a.digest() == b.digest()  # suspect is still a member
    b.merge(row("p7", 7, DEAD))
    assert a.digest() != b.digest() and b.size() == 50
    a.merge(row("p7", 7, DEAD))
    assert a.digest() == b.digest()


def test_news_are_bounded_per_heartbeat_and_each_is_sent_a_few_times_then_dropped() -> None:
    t = table()
    for i in range(40):
        t.merge(row(f"p{i}", 1))
    sends = []
    while t.pending():
        batch = t.news(16)
        assert 0 < len(batch) <= 16
        sends.append(len(batch))
    # 41 updates (ours included), each sent retransmit_mult * ceil(log10(41 + 1)) = 6 times.
    assert sum(sends) == 41 * 6


def test_a_judged_suspicion_is_gossiped_but_a_judged_return_is_not() -> None:
    t = table()
    t.merge(row("a", 4))
    t.news(1000)
    t.news(1000)
    while t.pending():
        t.news(1000)
    assert t.judge("a", SUSPECT) is not None and [r.state for r in t.news(4)] == [SUSPECT]
    assert t.judge("a", ALIVE) is not None and t.rows["a"].state is ALIVE
    while t.pending():
        t.news(1000)
    t.judge("a", ALIVE)
    assert t.pending() == 0


def test_only_watched_peers_are_judged_by_silence_and_the_others_by_what_they_are_told() -> None:
    cfg = MembershipConfig(heartbeat_interval=1, suspect_after=5, dead_after=30)
    m = Membership(cfg)
    m.observe("near", 0.0)
    assert m.told("far", ALIVE, 0.0) is not None
    assert m.tick(0.0, watched=["near"]) == []
    assert m.tick(10.0, watched=["near"])[0].peer == "near"  # far has been silent as long
    assert m.state("far") is ALIVE
    assert m.told("near", ALIVE, 11.0) is None  # hearsay does not override a neighbour's silence
    assert m.told("far", DEAD, 12.0) is not None and m.state("far") is DEAD
    m.told("back", ALIVE, 0.0)
    m.tick(100.0, watched=["near", "back"])  # newly watched: silence counted from now
    assert m.state("back") is ALIVE
    assert m.tick(106.0, watched=["near", "back"])[0].new is SUSPECT


# -- nodes on the twin -----------------------------------------------------------------

TIGHT: dict[str, Any] = {"mesh_d": 2, "mesh_d_lo": 1, "mesh_d_hi": 3}


async def start(twin: Twin, n: int) -> list[Node]:
    first = await twin.node("n0", **TIGHT)
    rest = [await twin.node(f"n{i}", seeds=[first], **TIGHT) for i in range(1, n)]
    return [first, *rest]


def knows_all(nodes: list[Node]) -> bool:
    return all(len(n.membership.alive()) == len(nodes) - 1 for n in nodes)


async def test_every_node_knows_every_member_though_heartbeats_reach_neighbours_only(twin: Twin) -> None:
    nodes = await start(twin, 14)
    await eventually(lambda: knows_all(nodes), "every node knowing all 13 others alive", 40)
    assert all(n.counters.relayed["heartbeat"] == 0 for n in nodes)
    # With a mesh of 1 to 3 per domain, most members are known by gossip alone.
    assert max(len(n.transport.linked()) for n in nodes) <= 8
    late = await twin.node("late", seeds=[nodes[5]], **TIGHT)
    everyone = [*nodes, late]
    await eventually(lambda: knows_all(everyone), "a late joiner known to all, and knowing all", 30)


async def test_a_node_cut_off_is_dead_at_its_neighbours_and_at_everyone_else(twin: Twin) -> None:
    nodes = await start(twin, 10)
    await eventually(lambda: knows_all(nodes), "every node knowing all 9 others alive", 40)
    victim, rest = nodes[4], [n for n in nodes if n is not nodes[4]]
    twin.network.partition([twin.transports[n.id] for n in rest], [twin.transports[victim.id]])
    await eventually(
        lambda: all(n.membership.state(victim.id) is DEAD for n in rest), "the cut node dead everywhere", 30
    )
    assert all(len(n.membership.alive()) == len(rest) - 1 for n in rest)  # nobody else was buried
    twin.network.heal()
    await eventually(lambda: knows_all(nodes), "the healed node alive everywhere again", 40)


# -- links: what heartbeats cost is a node's links, so meshes share them -------------------


def test_a_node_in_k_domains_runs_each_domain_mesh_at_a_kth_of_the_band() -> None:
    band = MeshConfig(d=6, d_lo=4, d_hi=8)
    assert split_band(band, 1) == band
    half = split_band(band, 2)
    assert (half.d_lo, half.d, half.d_hi) == (2, 3, 4)
    meshes = Meshes(band, ["_global", "math", "geo"], shared="_global")
    rng = random.Random(1)
    peers = [f"p{i}" for i in range(30)]
    meshes.tick(0.0, {"_global": peers, "math": peers[:15], "geo": peers[15:]}, rng)
    # Each domain grafted 3, and the shared mesh, counting those 6 links, only its one own member.
    assert len(meshes.members("math")) == 3 and len(meshes.members("geo")) == 3
    assert len(meshes.members("_global")) == SHARED_OWN and len(meshes.desired()) <= 7


def test_grafts_go_to_peers_already_linked_first() -> None:
    mesh = Mesh(MeshConfig(d=3, d_lo=2, d_hi=4))
    peers = [f"p{i}" for i in range(20)]
    actions = mesh.heartbeat(0.0, peers, random.Random(2), preferred=peers, linked=["p5", "p9", "p13"])
    assert sorted(actions.graft) == ["p13", "p5", "p9"]
