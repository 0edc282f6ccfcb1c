"""Domain gossip across real processes: sparse meshes, relay, and topic isolation."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = pytest.mark.slow

SPARSE = ["--mesh-d", "1", "--mesh-d-lo", "1", "--mesh-d-hi", "2"]


@pytest.mark.timeout(150)
def test_domain_message_reaches_every_member_over_a_sparse_mesh_and_nobody_else(
    cluster: Cluster, tmp_path: Path
) -> None:
    domains = ["alpha", "beta", "gamma"]
    nodes: list[NodeProcess] = []
    for i in range(9):
        args = ["--domain", domains[i % 3], *SPARSE]
        if nodes:
            args += ["--seed", nodes[-1].router]
        nodes.append(cluster.start(f"{domains[i % 3]}{i // 3}", *args))

    def membership_complete() -> bool:
        return all(sum(s == "alive" for s in n.peer_states().values()) >= 8 for n in nodes)

    wait_until(membership_complete, 60, "every node to see the 8 others alive")
    for n in nodes:
        report = n.status()
        assert report is not None
        links = sum(p["connected"] for p in report["peers"].values())
        assert 1 <= links <= 4, f"{n.id} holds {links} links; its meshes allow at most 4 (global + domain)"

    publisher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.publisher",
            str(tmp_path / "pub"),
            nodes[0].router,
            "alpha",
            "sparse",
            "big",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert publisher.stdout is not None
        assert publisher.stdout.readline().strip() == b"published"

        def holds(n: NodeProcess) -> bool:
            report = n.status()
            held = {k.rsplit("/", 1)[0] for k in report["state"]} if report is not None else set()
            return {"pub/qtable", "pub/delta"} <= held

        alpha = [n for n in nodes if n.id.startswith("alpha")]
        others = [n for n in nodes if not n.id.startswith("alpha")]
        wait_until(lambda: all(holds(n) for n in alpha), 30, "every alpha member to hold pub's Q-table")
        # Give the others the same time again: nothing of alpha's may reach them.
        settle = time.monotonic() + 2.0
        wait_until(lambda: time.monotonic() > settle, 5, "more gossip rounds")
        assert not [n.id for n in others if holds(n)]

        # Some alpha member got it without a link to the publisher: it came by relay.
        def linked_to_pub(n: NodeProcess) -> bool:
            report = n.status()
            return bool(report and report["peers"].get("pub", {}).get("connected"))

        assert [n.id for n in alpha if not linked_to_pub(n)], "every alpha member was linked to the publisher"
        # The 400 KB delta travelled those relay hops as ihave announcements and fetches, not as bytes.
        reports = [n.status() for n in alpha]
        assert all(r is not None for r in reports)
        announced = sum(r["counters"]["received"].get("ihave", 0) for r in reports if r is not None)
        fetched = sum(r["counters"]["received"].get("fetched", 0) for r in reports if r is not None)
        assert announced > 0 and fetched > 0, (announced, fetched)
    finally:
        publisher.terminate()
        publisher.wait(10)
        if publisher.stdout is not None:
            publisher.stdout.close()
