"""The in-memory transport twin behaves as the ZeroMQ transport does where a node can tell."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from metamesh.errors import TransportError
from metamesh.gossip.memory import Faults, MemoryNetwork, MemoryTransport
from metamesh.gossip.transport import Transport, ZmqTransport
from metamesh.protocol import LAN
from tests.twin import eventually

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_sockets")]

TOPIC = b"math/insight/8"


async def pair(net: MemoryNetwork, **kw: int) -> tuple[MemoryTransport, MemoryTransport]:
    pub, sub = net.transport(**kw), net.transport(**kw)
    await pub.bind("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    await sub.bind("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    return pub, sub


class Inbox:
    """A receive loop on a transport, keeping what arrives."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.got: list[list[bytes]] = []
        self.task = asyncio.ensure_future(transport.receive(self.got.append))

    async def close(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def inbox_of() -> AsyncIterator[list[Inbox]]:
    made: list[Inbox] = []
    yield made
    for inbox in made:
        await inbox.close()


def test_both_transports_are_the_one_interface() -> None:
    assert issubclass(ZmqTransport, Transport) and issubclass(MemoryTransport, Transport)
    assert not MemoryNetwork().transport().encrypted


async def test_a_subscriber_gets_what_a_linked_publisher_sends_on_its_prefixes(inbox_of: list[Inbox]) -> None:
    net = MemoryNetwork()
    pub, sub = await pair(net)
    inbox = Inbox(sub)
    inbox_of.append(inbox)
    sub.link(pub.pub_endpoint, "p")
    pub.publish([TOPIC, b"x"])  # not subscribed yet: filtered out
    sub.subscribe(b"math/")
    pub.publish([b"maths/insight/8", b"y"])  # another domain: "maths" is not "math/"
    pub.publish([TOPIC, memoryview(b"z")])
    await eventually(lambda: inbox.got, "the message")
    await asyncio.sleep(0)  # a turn more: nothing else was on its way
    assert inbox.got == [[TOPIC, b"z"]]  # frames copied to bytes, as the wire would


async def test_what_was_sent_before_a_link_or_after_an_unlink_is_not_received(inbox_of: list[Inbox]) -> None:
    net = MemoryNetwork()
    pub, sub = await pair(net)
    inbox = Inbox(sub)
    inbox_of.append(inbox)
    sub.subscribe(b"")
    pub.publish([TOPIC, b"early"])
    sub.link(pub.pub_endpoint, "p")
    assert sub.linked() == {pub.pub_endpoint}
    pub.publish([TOPIC, b"linked"])
    sub.unlink(pub.pub_endpoint)
    pub.publish([TOPIC, b"late"])
    await eventually(lambda: inbox.got, "the linked message")
    assert [f[1] for f in inbox.got] == [b"linked"] and sub.linked() == set()


async def test_a_link_made_before_the_publisher_binds_delivers_once_it_does(inbox_of: list[Inbox]) -> None:
    net = MemoryNetwork()
    sub = net.transport()
    inbox = Inbox(sub)
    inbox_of.append(inbox)
    sub.subscribe(b"")
    sub.link("tcp://127.0.0.1:40000", "p")  # as a ZeroMQ connect, it keeps trying
    pub = net.transport()
    await pub.bind("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    assert pub.pub_endpoint == "tcp://127.0.0.1:40000"
    pub.publish([TOPIC, b"x"])
    await eventually(lambda: inbox.got, "the message")


def drops(seed: int) -> list[int]:
    net = MemoryNetwork(seed=seed, faults=Faults(drop=0.5))
    a, b = net.transport(), net.transport()
    kept: list[int] = []
    for i in range(40):
        net.carry(a, b, lambda i=i: kept.append(i), request=False)
    return kept


def test_drops_are_deterministic_for_a_seed() -> None:
    assert drops(1) == drops(1) != drops(2)
    assert 5 < len(drops(1)) < 35


async def test_duplicates_and_delays(inbox_of: list[Inbox]) -> None:
    net = MemoryNetwork(seed=3, faults=Faults(duplicate=1.0, delay=0.05))
    pub, sub = await pair(net)
    inbox = Inbox(sub)
    inbox_of.append(inbox)
    sub.subscribe(b"")
    sub.link(pub.pub_endpoint, "p")
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    pub.publish([TOPIC, b"x"])
    await asyncio.sleep(0)
    assert inbox.got == []  # delayed
    await eventually(lambda: len(inbox.got) == 2, "both copies")
    assert loop.time() - sent_at >= 0.05 and net.stats["duplicated"] == 1


async def test_a_partition_cuts_until_healed(inbox_of: list[Inbox]) -> None:
    net = MemoryNetwork()
    pub, sub = await pair(net)
    inbox = Inbox(sub)
    inbox_of.append(inbox)
    sub.subscribe(b"")
    sub.link(pub.pub_endpoint, "p")
    net.partition([pub], [sub])
    pub.publish([TOPIC, b"cut"])
    assert net.stats["cut"] == 1
    net.heal()
    pub.publish([TOPIC, b"healed"])
    await eventually(lambda: inbox.got, "the message after healing")
    assert [f[1] for f in inbox.got] == [b"healed"]


async def test_requests_are_served_and_replied_to_on_their_channel() -> None:
    net = MemoryNetwork()
    client, server = await pair(net)
    served = asyncio.ensure_future(server.serve(lambda who, frames: server.reply(who, [b"re:", *frames])))
    try:
        channel = client.channel(server.router_endpoint, "s")
        assert client.has_channel(server.router_endpoint)
        async with channel.lock:
            await channel.send([b"ping"])
            assert await asyncio.wait_for(channel.recv(), 5) == [b"re:", b"ping"]
    finally:
        served.cancel()
        with pytest.raises(asyncio.CancelledError):
            await served


async def test_a_request_to_an_endpoint_nobody_serves_goes_unanswered() -> None:
    net = MemoryNetwork()
    client = net.transport()
    channel = client.channel("tcp://127.0.0.1:49999", "nobody")
    await channel.send([b"ping"])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(channel.recv(), 0.05)
    client.drop_channel("tcp://127.0.0.1:49999")
    assert not client.has_channel("tcp://127.0.0.1:49999")
    with pytest.raises(TransportError):
        await channel.send([b"again"])


async def test_a_full_inbox_drops_and_counts_and_oversized_frames_are_dropped() -> None:
    net = MemoryNetwork()
    pub, sub = await pair(net, hwm=3, max_frame_bytes=8)
    sub.subscribe(b"")
    sub.link(pub.pub_endpoint, "p")
    pub.publish([TOPIC, b"x" * 9])  # over MAXMSGSIZE
    for _ in range(5):
        pub.publish([TOPIC[:8], b"x"])
    assert sub.dropped == {"too_large": 1, "hwm": 2} and len(sub.inbox.items) == 3


async def test_binding_a_port_in_use_raises_and_a_closed_transport_frees_it() -> None:
    net = MemoryNetwork()
    a, b = net.transport(), net.transport()
    await a.bind("tcp://127.0.0.1:41000", "tcp://127.0.0.1:41001")
    with pytest.raises(TransportError):
        await b.bind("tcp://127.0.0.1:41000", "tcp://127.0.0.1:41002")
    a.close()
    assert await b.bind("tcp://127.0.0.1:41000", "tcp://127.0.0.1:41001") == (
        "tcp://127.0.0.1:41000",
        "tcp://127.0.0.1:41001",
    )
    with pytest.raises(TransportError):
        a.publish([TOPIC])


def test_the_zeromq_transport_is_made_without_a_socket() -> None:
    """Sockets come at ``bind``: building one (as ``Node`` does) opens nothing."""
    transport = ZmqTransport(limits=LAN)
    assert not transport.encrypted
    transport.close()
