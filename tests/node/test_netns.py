"""Multi-host behaviour on one machine: nodes in Linux network namespaces on a bridge."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.netns]

SUBNET = "10.213.7"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def hosts() -> Iterator[list[tuple[str, str, str]]]:
    """Three namespaces ("hosts") joined by a bridge, as ``(namespace, address, interface)``; the bridge
    has an address too, so this process can ask the nodes for their status. Removed afterwards."""
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
        _ip("addr", "add", f"{SUBNET}.1/24", "dev", bridge)
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
            out.append((ns, addr, veth))
        yield out
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)


def start_hosts(cluster: Cluster, hosts: list[tuple[str, str, str]], *args: str) -> list[NodeProcess]:
    """A node in each namespace, bound to every interface, finding the others by beacon only."""
    return [
        cluster.start(
            f"h{i}",
            *("--host", "0.0.0.0", "--advertise", addr, "--beacon", "--beacon-address", f"{SUBNET}.255"),
            *("--random-seed", str(i), *args),
            prefix=("ip", "netns", "exec", ns),
        )
        for i, (ns, addr, _) in enumerate(hosts)
    ]


@pytest.mark.timeout(120)
def test_nodes_with_no_seeds_find_each_other_by_udp_beacon(
    cluster: Cluster, hosts: list[tuple[str, str, str]]
) -> None:
    nodes = start_hosts(cluster, hosts)

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


def peer_events(node: NodeProcess, peer: str) -> list[str]:
    return [e["new"] for e in node.events() if e["event"] == "peer" and e["peer"] == peer]


def episodes(node: NodeProcess) -> int:
    report = node.status()
    return int(report["learner"]["episodes"]) if report is not None else -1


def held_rows(node: NodeProcess, author: str) -> dict[str, int]:
    """The latest Q-table of each category domain that ``node`` holds from ``author``: key -> seq."""
    report = node.status()
    if report is None:
        return {}
    return {k: v for k, v in report["state"].items() if k.startswith(f"{author}/qtable/")}


@pytest.mark.timeout(240)
def test_learning_across_hosts_survives_a_cut_link_and_the_node_rejoins_and_catches_up(
    cluster: Cluster, hosts: list[tuple[str, str, str]]
) -> None:
    learner = ("--learner", "prompts", "--pace", "0.05", "--eval-every", "40")
    nodes = start_hosts(cluster, hosts, *learner, "--domain-enter", "0.02", "--domain-exit", "0.01")
    h0, h1, h2 = nodes
    # Learning across hosts: every node holds Q-table rows of every other, in several categories.
    wait_until(
        lambda: all(len(held_rows(n, m.id)) >= 3 for n in nodes for m in nodes if m is not n),
        60,
        "every node to hold rows of at least 3 categories from each other node",
    )
    wait_until(
        lambda: any(e["event"] == "eval" and e["peer_rows"] >= 6 for e in h0.events()),
        60,
        "h0 to decide on at least 6 rows of its peers",
    )

    ns2, _, veth2 = hosts[2]
    _ip("-n", ns2, "link", "set", veth2, "down")  # the cable is pulled
    for n in (h0, h1):
        wait_until(
            lambda n=n: peer_events(n, h2.id)[-2:] == ["suspect", "dead"], 30, f"{n.id} to mark h2 dead"
        )
    # The others carry on learning and sharing with each other.
    before = {n.id: (episodes(n), held_rows(h1, h0.id)) for n in (h0, h1)}
    wait_until(
        lambda: all(episodes(n) >= before[n.id][0] + 40 for n in (h0, h1)), 60, "40 more episodes each"
    )
    newer = held_rows(h1, h0.id)
    assert any(newer[k] > before[h1.id][1].get(k, -1) for k in newer), "h1 got nothing new from h0"

    _ip("-n", ns2, "link", "set", veth2, "up")  # plugged back in
    for n in (h0, h1):
        wait_until(lambda n=n: peer_events(n, h2.id)[-1:] == ["alive"], 30, f"{n.id} to see h2 alive again")
    # h2 catches up: it comes to hold h0's rows as they are now (or newer), in every category h0 shares.
    target = held_rows(h0, h0.id)
    wait_until(
        lambda: all(held_rows(h2, h0.id).get(k, -1) >= seq for k, seq in target.items()),
        60,
        "h2 to hold h0's current rows",
    )
    for n in nodes:
        assert n.alive()


@pytest.mark.timeout(120)
def test_a_seed_whose_name_never_resolves_does_not_stall_the_node(
    cluster: Cluster, hosts: list[tuple[str, str, str]]
) -> None:
    # h0's resolver is an address on the bridge that nobody answers, so every lookup hangs
    # for the resolver's full timeout, as on a host whose DNS server is down.
    ns0, addr0, _ = hosts[0]
    resolv = Path("/etc/netns") / ns0 / "resolv.conf"
    resolv.parent.mkdir(parents=True, exist_ok=True)
    resolv.write_text(f"nameserver {SUBNET}.250\noptions timeout:3 attempts:2\n")
    try:
        h0 = cluster.start(
            "h0",
            *("--host", "0.0.0.0", "--advertise", addr0),
            *("--seed", "tcp://seed.metamesh.invalid:7000"),
            prefix=("ip", "netns", "exec", ns0),
        )
        # The node keeps answering promptly while the seed's name is being looked up (and
        # retried): before lookups moved off ZeroMQ's I/O thread, each one froze every socket.
        slow = []
        for _ in range(20):  # bounded: 20 status requests over at least 10 s
            started = time.monotonic()
            report = h0.status(timeout=2.0)
            slow += [] if report is not None and time.monotonic() - started < 1.0 else [1]
            time.sleep(0.5)  # spacing between probes, not synchronisation
        assert not slow, f"{len(slow)} of 20 status requests took over 1 s or went unanswered"
        lookups = [e for e in h0.events() if e["event"] == "seed_unresolved"]
        assert lookups, "the seed's failed lookups were not recorded"
        assert h0.alive()
    finally:
        shutil.rmtree(resolv.parent, ignore_errors=True)
