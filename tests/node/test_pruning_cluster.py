"""Sixteen real nodes whose meshes are bounded tight, so they graft and prune all the time.

Each prune unlinks a SUB from a peer; before links were unlinked only between whole messages
(metamesh.gossip.receive), some nodes of such a cluster died of libzmq's
``Assertion failed: !_more (src/fq.cpp:80)``.
"""

from __future__ import annotations

import time

import pytest

from tests.cluster import Cluster, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

NODES = 16
CHURN_SECONDS = 20.0
# Degree 2 in a band of 1..3: every node hears about 15 peers, so its meshes overflow and prune.
TIGHT_MESH = ("--mesh-d", "2", "--mesh-d-lo", "1", "--mesh-d-hi", "3")


def test_sixteen_nodes_pruning_all_the_time_all_stay_up(cluster: Cluster) -> None:
    first = cluster.start("n0", *TIGHT_MESH)
    rest = [(f"n{i}", ["--seed", first.router, *TIGHT_MESH]) for i in range(1, NODES)]
    nodes = [first, *cluster.start_many(rest)]

    def some_died() -> bool:
        return not all(n.alive() for n in nodes)

    def known() -> bool:
        return all(len(n.peer_states()) >= NODES // 2 for n in nodes)

    wait_until(lambda: some_died() or known(), 90, "every node to know half the cluster")
    deadline = time.monotonic() + CHURN_SECONDS
    wait_until(lambda: some_died() or time.monotonic() > deadline, CHURN_SECONDS + 5, "churn or a death")
    died = [n.home.name for n in nodes if not n.alive()]
    aborts = [n.home.name for n in nodes if "Assertion failed" in n.log_path.read_text(errors="replace")]
    assert not died and not aborts, f"died: {died}; libzmq asserted in: {aborts}"
    statuses = [n.status() for n in nodes]
    prunes = sum(int(s["counters"]["sent"].get("prune", 0)) for s in statuses if s is not None)
    # Meshes that graft already-linked peers first prune less than they once did (13-40 prunes in
    # 20 s, by load); a handful is enough to have dropped links while messages were in flight.
    assert prunes >= 4, f"only {prunes} prunes sent: the meshes hardly pruned"
