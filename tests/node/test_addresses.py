"""Addresses: names a user gives are looked up by the node; addresses peers advertise are checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from metamesh.errors import ConfigError
from metamesh.node.client import ask
from metamesh.node.config import NodeConfig, load_config
from metamesh.node.runtime import Node
from metamesh.protocol import Hello

pytestmark = pytest.mark.timeout(60)


def config(home: Path, **overrides: object) -> NodeConfig:
    return load_config(profile="local", overrides={"home": home, "name": home.name, **overrides})


async def test_a_node_links_only_to_peers_inside_its_peer_networks(tmp_path: Path) -> None:
    async with Node(config(tmp_path / "n", peer_networks=["127.0.0.0/8"])) as node:
        far = Hello("tcp://10.1.2.3:5555", "tcp://10.1.2.3:5556", ("math",), (), "far")
        await ask(node.router_endpoint, far)
        assert node.peers == {} and node.membership.alive() == []
        assert node.counters.dropped["peer_outside_networks"] == 1
        near = Hello("tcp://127.0.0.2:5555", "tcp://127.0.0.2:5556", ("math",), (), "near")
        await ask(node.router_endpoint, near)
        assert len(node.peers) == 1 and len(node.membership.alive()) == 1


async def test_a_seed_given_by_name_is_looked_up_and_joined(tmp_path: Path) -> None:
    async with Node(config(tmp_path / "a")) as a:
        port = a.router_endpoint.rsplit(":", 1)[1]
        async with Node(
            config(tmp_path / "b", seed=[f"tcp://localhost:{port}"], advertise="localhost")
        ) as b:
            assert b.pub_endpoint.startswith("tcp://127.0.0.1:")  # advertised as an address
            async with asyncio.timeout(20):
                while a.id not in b.membership.alive():  # noqa: ASYNC110 - a pure state machine, under a deadline
                    await asyncio.sleep(0.05)


def ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_nodes_bound_to_an_ipv6_address_find_each_other(tmp_path: Path) -> None:
    async with Node(config(tmp_path / "a", host="::1")) as a:
        assert a.router_endpoint.startswith("tcp://[::1]:")  # bracketed, as PROTOCOL.md §4 asks
        async with Node(config(tmp_path / "b", host="::1", seed=[a.router_endpoint])) as b:

            def linked(x: Node, y: Node) -> bool:  # x's SUB takes y's PUB, and heartbeats come over it
                record = x.peers.get(y.id)
                return record is not None and record.connected and x.counters.received["heartbeat"] > 0

            async with asyncio.timeout(20):
                while not (linked(a, b) and linked(b, a)):  # noqa: ASYNC110 - state of both nodes, under a deadline
                    await asyncio.sleep(0.05)


async def test_an_advertised_name_that_does_not_resolve_stops_the_start(tmp_path: Path) -> None:
    node = Node(config(tmp_path / "n", advertise="no-such-host.invalid"))
    with pytest.raises(ConfigError, match=r"cannot advertise 'no-such-host\.invalid'"):
        await node.start()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seed", ["ipc:///tmp/x"], "not a tcp:// endpoint"),
        ("seed", ["tcp://10.0.0.2"], "no port"),
        ("peer_networks", ["10.0.0.0/33"], "not a network"),
        ("advertise", "tcp://10.0.0.2:5", "host name or address"),
    ],
)
def test_bad_addresses_in_the_config_are_refused_with_what_was_expected(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config(tmp_path / "n", **{key: value})
