"""Multi-host behaviour on one machine: nodes in Linux network namespaces on a bridge."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.netns]

SUBNET = "10.213.7"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def hosts() -> Iterator[list[tuple[str, str]]]:
    """Three namespaces ("hosts") joined by a bridge; removed afterwards, whatever happens."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create network namespaces")
    tag = uuid.uuid4().hex[:6]
    bridge = f"mmbr{tag}"
    names = [f"mm{tag}h{i}" for i in range(3)]
    created: list[str] = []
    try:
        try:
            _ip("link", "add", bridge, "type", "bridge")
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create a bridge here: {exc.stderr.decode().strip()}")
        _ip("link", "set", bridge, "up")
        out = []
        for i, ns in enumerate(names):
            _ip("netns", "add", ns)
            created.append(ns)
            veth, peer = f"mm{tag}v{i}", f"mm{tag}p{i}"
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "master", bridge)
            _ip("link", "set", peer, "up")
            _ip("link", "set", veth, "netns", ns)
            addr = f"{SUBNET}.{10 + i}"
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", veth)
            _ip("-n", ns, "link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            out.append((ns, addr))
        yield out
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)


@pytest.mark.timeout(120)
def test_nodes_with_no_seeds_find_each_other_by_udp_beacon(
    cluster: Cluster, hosts: list[tuple[str, str]]
) -> None:
    nodes = []
    for i, (ns, addr) in enumerate(hosts):
        nodes.append(
            cluster.start(
                f"h{i}",
                "--host",
                "0.0.0.0",
                "--advertise",
                addr,
                "--beacon",
                "--beacon-address",
                f"{SUBNET}.255",
                prefix=("ip", "netns", "exec", ns),
            )
        )

    def alive_peers(node: object) -> set[str]:
        events = node.events()  # type: ignore[attr-defined]
        return {e["peer"] for e in events if e["event"] == "peer" and e.get("new") == "alive"}

    wait_until(
        lambda: all(alive_peers(n) >= {m.id for m in nodes if m is not n} for n in nodes),
        30,
        "every node to see the other two through beacons alone",
    )
    # No seeds were given; every node hears the others' beacons across the bridge.
    for n in nodes:
        wait_until(
            lambda n=n: (
                {e["peer"] for e in n.events() if e["event"] == "beacon"}
                >= {m.id for m in nodes if m is not n}
            ),
            10,
            f"{n.id} to hear both beacons",
        )
