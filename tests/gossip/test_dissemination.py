"""The dissemination simulation (bench/simulate.py) at small N: the node's own gossip code
(in-memory transport with 1% loss, Membership, Meshes, ReplayWindow, the codec's relay) spreads
a message to 99.99% in rounds growing about as log N, at a per-node cost set by the mesh degree."""

from __future__ import annotations

import math

import pytest

from bench.simulate import flood, push, simulate
from metamesh.gossip.mesh import MeshConfig

pytestmark = pytest.mark.timeout(120)  # about 2 s on an idle 2-core machine


async def test_rounds_grow_as_log_n_and_per_node_cost_is_bounded_by_the_mesh() -> None:
    mesh = MeshConfig()
    small = await simulate(100, loss=0.01, messages=4, seed=3)
    large = await simulate(1000, loss=0.01, messages=4, seed=3)
    for res in (small, large):
        assert min(res.reach) == 1.0, res.reach
        worst = res.worst()
        assert worst is not None and worst <= math.ceil(math.log2(res.n)), res.rounds
        # one message in flight: a node hears it at most once per link, and links come from
        # two meshes (_global and the domain), each at most d_hi
        assert res.links_max <= 2 * mesh.d_hi
        assert res.per_node_round_max <= res.links_max
        assert res.upkeep < 0.1  # meshes formed: almost no grafts or prunes per heartbeat
    small_worst, large_worst = small.worst(), large.worst()
    assert small_worst is not None and large_worst is not None
    assert large_worst <= small_worst + math.ceil(math.log2(10))  # 10x the nodes: a few more rounds
    assert large.per_node_message <= 1.2 * small.per_node_message  # flat in N
    assert large.per_node_message <= 2 * mesh.d_hi


def test_the_models_compared_against_cost_n_per_node_for_a_flood_and_log_n_for_push() -> None:
    flooded, pushed = flood(1000, messages=3), push(1000, messages=3)
    assert flooded.per_node_message == pytest.approx(999)
    assert pushed.per_node_message == 3 * 4 * math.ceil(math.log10(1001))
    assert min(flooded.reach) == 1.0 and min(pushed.reach) > 0.999


async def test_with_heavy_loss_a_hop_budget_still_reaches_nearly_everyone() -> None:
    res = await simulate(300, loss=0.2, messages=3, seed=5)
    assert min(res.reach) > 0.99
