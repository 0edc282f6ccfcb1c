"""One-shot requests to a node's ROUTER, for tools (``metamesh status``) and tests."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import zmq
import zmq.asyncio

from metamesh.errors import ProtocolError, TransportError
from metamesh.gossip.keys import load_keys
from metamesh.gossip.resolve import resolve_tcp
from metamesh.gossip.sockets import SocketFactory
from metamesh.protocol import GLOBAL_DOMAIN, LAN, Body, Envelope, decode, encode

__all__ = ["ask"]


async def ask(
    endpoint: str,
    body: Body,
    *,
    timeout: float = 3.0,
    keys_dir: Path | None = None,
    peer_id: str = "",
) -> Envelope:
    """Send one request and return the reply to it. Raises TimeoutError or TransportError."""
    endpoint = await resolve_tcp(endpoint, timeout)  # a clear error for a name that does not resolve
    ctx = zmq.asyncio.Context()
    keys = load_keys(keys_dir) if keys_dir is not None else None
    factory = SocketFactory(ctx, limits=LAN, keys=keys)
    server_key = keys.server_key(peer_id) if keys is not None else None
    sock = factory.dealer(endpoint, server_key)
    try:
        env = Envelope(f"cli-{secrets.token_hex(3)}", 0, GLOBAL_DOMAIN, body, time.time(), hops=0)
        await sock.send_multipart(encode(env), copy=False)
        async with asyncio.timeout(timeout):
            while True:
                frames = await sock.recv_multipart(copy=False)
                try:
                    reply = decode(frames)
                except ProtocolError as exc:
                    raise TransportError(f"{endpoint} answered with an invalid message: {exc}") from exc
                if reply.reply_to == env.seq:
                    return reply
    finally:
        sock.close(linger=0)
        ctx.term()
