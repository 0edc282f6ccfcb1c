"""The one place ZeroMQ sockets are made and configured (the ZeroMQ transport uses it).

Every socket gets explicit high-water marks, linger, ``MAXMSGSIZE`` from the
protocol limits and reconnect intervals; with keys configured, every socket is
CurveZMQ-encrypted and the node's ZAP authenticator admits only allowlisted
public keys. Nothing else in metamesh calls ``ctx.socket``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from metamesh.errors import TransportError
from metamesh.gossip.keys import CurveKeys
from metamesh.protocol import Limits

__all__ = ["SocketFactory", "SocketOptions"]

log = logging.getLogger(__name__)

#: Seconds between two warnings about the same refused public key.
REFUSAL_LOG_INTERVAL = 60.0
#: Refused keys remembered for that; the oldest is forgotten first.
MAX_REFUSED_LOGGED = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketOptions:
    """Per-socket settings; profiles tune these (an edge device keeps HWMs small)."""

    send_hwm: int = 1000
    recv_hwm: int = 1000
    linger_ms: int = 0
    reconnect_ivl_ms: int = 100
    reconnect_ivl_max_ms: int = 5000
    heartbeat_ivl_ms: int = 0


class SocketFactory:
    """Makes every socket a node uses, configured alike.

    ``start`` must be awaited (on the node's loop) before sockets are made when
    Curve keys are given, so the ZAP authenticator is running.
    """

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        *,
        limits: Limits,
        options: SocketOptions | None = None,
        keys: CurveKeys | None = None,
    ) -> None:
        self.ctx = ctx
        self.limits = limits
        self.options = options or SocketOptions()
        self.keys = keys
        self._auth: AsyncioAuthenticator | None = None

    @property
    def encrypted(self) -> bool:
        return self.keys is not None

    def start(self) -> None:
        """Start the ZAP authenticator when the network is encrypted."""
        if self.keys is None or self._auth is not None:
            return
        auth = AsyncioAuthenticator(self.ctx)
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=_Allowlist(self.keys))
        self._auth = auth

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(kind)
        o = self.options
        sock.setsockopt(zmq.LINGER, o.linger_ms)
        sock.setsockopt(zmq.SNDHWM, o.send_hwm)
        sock.setsockopt(zmq.RCVHWM, o.recv_hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes)
        sock.setsockopt(zmq.RECONNECT_IVL, o.reconnect_ivl_ms)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, o.reconnect_ivl_max_ms)
        sock.setsockopt(zmq.IPV6, 1)  # IPv6 endpoints too; IPv4 ones work as before
        if o.heartbeat_ivl_ms:
            sock.setsockopt(zmq.HEARTBEAT_IVL, o.heartbeat_ivl_ms)
        return sock

    def _server(self, kind: int, endpoint: str) -> tuple[zmq.asyncio.Socket, str]:
        sock = self._socket(kind)
        if self.keys is not None:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
        try:
            if endpoint.endswith(":0") or endpoint.endswith(":*"):
                port = sock.bind_to_random_port(endpoint.rsplit(":", 1)[0])
                bound = f"{endpoint.rsplit(':', 1)[0]}:{port}"
            else:
                sock.bind(endpoint)
                bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise TransportError(f"cannot bind {endpoint}: {exc}") from exc
        return sock, bound

    def _client(self, kind: int, server_key: bytes | None) -> zmq.asyncio.Socket:
        sock = self._socket(kind)
        if self.keys is not None:
            if server_key is None:
                sock.close(linger=0)
                raise TransportError("encrypted network: the peer's public key is not allowlisted")
            sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        return sock

    def pub(self, endpoint: str) -> tuple[zmq.asyncio.Socket, str]:
        """A bound PUB socket and the endpoint it really bound (``:0`` picks a port)."""
        return self._server(zmq.PUB, endpoint)

    def router(self, endpoint: str) -> tuple[zmq.asyncio.Socket, str]:
        sock, bound = self._server(zmq.ROUTER, endpoint)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        return sock, bound

    def sub(self) -> zmq.asyncio.Socket:
        """An unconnected SUB socket. With Curve, each connection needs that peer's
        key: use :meth:`connect_sub`."""
        sock = self._socket(zmq.SUB)
        if self.keys is not None:
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        return sock

    def connect_sub(self, sock: zmq.asyncio.Socket, endpoint: str, server_key: bytes | None) -> None:
        """Connect a SUB to a peer's PUB; with Curve, the peer's key is set per connection."""
        if self.keys is not None:
            if server_key is None:
                raise TransportError(f"{endpoint}: peer's public key is not allowlisted")
            sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot connect to {endpoint}: {exc}") from exc

    def dealer(
        self,
        endpoint: str,
        server_key: bytes | None,
        *,
        before_connect: Callable[[zmq.asyncio.Socket], None] | None = None,
    ) -> zmq.asyncio.Socket:
        """A DEALER connected to ``endpoint``; ``before_connect`` sees it first, so a socket
        monitor attached there sees the first attempt too (libzmq does not retry a handshake
        the server refused by ZAP: that first attempt may be the only one)."""
        sock = self._client(zmq.DEALER, server_key)
        if before_connect is not None:
            before_connect(sock)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise TransportError(f"cannot connect to {endpoint}: {exc}") from exc
        return sock


class _Allowlist:
    """ZAP credentials provider: a client is admitted only if its key is allowlisted.

    A refused key is logged by its Z85 public key, the first line of that node's
    ``node.key``, so an operator can tell whose it is; once per key per
    ``REFUSAL_LOG_INTERVAL`` (a refused client keeps reconnecting), for a bounded set of keys.
    """

    def __init__(self, keys: CurveKeys, clock: Callable[[], float] = time.monotonic) -> None:
        self._allowed = set(keys.authorized.values()) | {keys.public}
        self._refused: dict[bytes, float] = {}  # key -> when last logged
        self._clock = clock

    def callback(self, domain: str, key: bytes) -> bool:
        """``key`` arrives Z85-encoded from pyzmq's authenticator."""
        allowed = key in self._allowed
        if not allowed:
            now = self._clock()
            last = self._refused.get(key)
            if last is None or now - last >= REFUSAL_LOG_INTERVAL:
                if last is None and len(self._refused) >= MAX_REFUSED_LOGGED:
                    self._refused.pop(next(iter(self._refused)))
                self._refused[key] = now
                log.warning(
                    "refused a connection from public key %s: it is in no authorized/*.key file; "
                    "to admit that node, copy its node.key to authorized/ID.key, ID its node id",
                    key.decode("ascii", "replace"),
                )
        return allowed
