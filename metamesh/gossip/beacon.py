"""UDP beacons: nodes on one LAN find each other with no seeds (as ZeroMQ's Zyre does).

A beacon is one datagram: ``b"MMB1"`` then a msgpack array
``[protocol version, node id, pub port, router port]``. The sender's address
comes from the datagram itself. Own and malformed beacons are ignored and
malformed ones counted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import msgpack

from metamesh.protocol import PROTOCOL_MAX, PROTOCOL_MIN
from metamesh.protocol._fields import is_name
from metamesh.protocol.envelope import MESSAGE_VERSION

__all__ = ["Beacon", "decode_beacon", "encode_beacon"]

log = logging.getLogger(__name__)
MAGIC = b"MMB1"
MAX_BEACON = 256

#: Called with (node id, sender ip, pub port, router port) for each valid beacon of another node.
OnPeer = Callable[[str, str, int, int], None]


def encode_beacon(node_id: str, pub_port: int, router_port: int) -> bytes:
    payload: bytes = msgpack.packb([MESSAGE_VERSION, node_id, pub_port, router_port])
    return MAGIC + payload


def decode_beacon(data: bytes) -> tuple[str, int, int] | None:
    """Node id and ports of a beacon, or None if it is not a valid one."""
    if len(data) > MAX_BEACON or not data.startswith(MAGIC):
        return None
    try:
        fields = msgpack.unpackb(data[len(MAGIC) :], max_array_len=8, max_str_len=128)
    except (ValueError, TypeError):
        return None
    if type(fields) is not list or len(fields) != 4:
        return None
    version, node_id, pub_port, router_port = fields
    if type(version) is not int or not PROTOCOL_MIN <= version <= PROTOCOL_MAX or not is_name(node_id):
        return None
    for port in (pub_port, router_port):
        if type(port) is not int or not 0 < port < 65536:
            return None
    return node_id, pub_port, router_port


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, own_id: str, on_peer: OnPeer) -> None:
        self.own_id = own_id
        self.on_peer = on_peer
        self.malformed = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        beacon = decode_beacon(data)
        if beacon is None:
            self.malformed += 1
            return
        node_id, pub_port, router_port = beacon
        if node_id != self.own_id:
            self.on_peer(node_id, str(addr[0]), pub_port, router_port)


class Beacon:
    """Broadcasts this node's beacon every ``interval`` and reports others' beacons."""

    def __init__(
        self,
        *,
        own_id: str,
        pub_port: int,
        router_port: int,
        port: int,
        address: str,
        interval: float,
        on_peer: OnPeer,
    ) -> None:
        self._payload = encode_beacon(own_id, pub_port, router_port)
        self._target = (address, port)
        self._port = port
        self._interval = interval
        self._protocol = _Protocol(own_id, on_peer)
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def malformed(self) -> int:
        return self._protocol.malformed

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("", self._port))
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self._protocol, sock=sock)

    async def run(self) -> None:
        """Send beacons until cancelled; a send error is logged once and retried."""
        warned = False
        while True:
            try:
                if self._transport is not None:
                    self._transport.sendto(self._payload, self._target)
            except OSError as exc:
                if not warned:
                    log.warning("cannot send beacons to %s:%d: %s", *self._target, exc)
                    warned = True
            await asyncio.sleep(self._interval)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
