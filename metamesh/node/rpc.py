"""Direct requests: asking a peer's server, and answering requests at ours.

A request goes over the transport's :class:`~metamesh.gossip.transport.Channel` to the
peer (one per peer, one request in flight at a time); a snapshot request collects until
its closing ``snapshot``, anything else returns after the first reply. The server answers
``hello``, ``status_request``, ``snapshot_request``, ``graft`` and ``prune`` (PROTOCOL.md
section 4); anything else is counted and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from metamesh.errors import ProtocolError, Reason
from metamesh.node.core import Core
from metamesh.node.reachability import Reachability
from metamesh.node.trust import Trust
from metamesh.protocol import (
    GLOBAL_DOMAIN,
    Body,
    Envelope,
    Graft,
    Hello,
    Prune,
    Snapshot,
    SnapshotRequest,
    Status,
    StatusRequest,
    decode,
    encode,
)

if TYPE_CHECKING:
    from metamesh.node.grafting import MeshKeeper
    from metamesh.node.peers import Peers
    from metamesh.node.snapshots import Snapshots

__all__ = ["STATUS_TOPIC", "Decoder", "RequestServer", "Requests"]

log = logging.getLogger(__name__)

STATUS_TOPIC = f"{GLOBAL_DOMAIN}/status_request/0".encode()


class Decoder:
    """Decode and verify, counting every rejection; a sender caught sending bad content is charged."""

    def __init__(self, core: Core, trust: Trust) -> None:
        self._core = core
        self._trust = trust

    def __call__(
        self,
        frames: Sequence[Any],
        skip: Callable[[str, int], bool] | None = None,
        *,
        signed: bool = True,
    ) -> Envelope | None:
        core = self._core
        try:
            return decode(frames, core.config.limits, skip=skip, verify=core.verifier if signed else None)
        except ProtocolError as exc:
            if exc.reason is Reason.DUPLICATE:
                core.counters.dropped["duplicate"] += 1
                return None
            author = exc.author if exc.author is not None and exc.author != core.id else None
            core.counters.reject(exc.reason.value, author or "unknown")
            if author is not None:
                self._trust.blame(author, exc.reason.value)
            log.debug("rejected a message: %s", exc)
            return None


class Requests:
    """The requesting side: one channel per peer server, watched while it is an unanswered seed."""

    def __init__(self, core: Core, decoder: Decoder, reach: Reachability) -> None:
        self._core = core
        self._decode = decoder
        self.reach = reach
        self.peer_of: Callable[[str], str] = lambda router: ""  # the peer id serving at a router

    async def request(
        self,
        router: str,
        body: Body,
        *,
        timeout: float,
        peer_id: str = "",
        domain: str = GLOBAL_DOMAIN,
        expect_reply: bool = True,
    ) -> list[Envelope]:
        """Send ``body`` to a peer's server and collect the replies to it. Raises TimeoutError
        or TransportError."""
        core = self._core
        wire = core.wire
        if not wire.has_channel(router):
            peer_id = peer_id or self.peer_of(router)
            watch = self.reach.wants_watch(router)  # a seed's connection is watched from its start
            channel = wire.channel(router, peer_id, watch=watch)
            if channel.watch is not None:
                self.reach.watching(router, channel.watch)
        channel = wire.channel(router, peer_id)
        async with channel.lock:
            env = core.envelope(domain, body, hops=0)
            await channel.send(encode(env, signer=core.signer))
            if not expect_reply:
                return []
            replies: list[Envelope] = []
            async with asyncio.timeout(timeout):
                while True:
                    reply = self._decode(await channel.recv())
                    if reply is None:
                        continue
                    if isinstance(body, SnapshotRequest):
                        if reply.reply_to == env.seq and isinstance(reply.body, Snapshot):
                            replies.append(reply)
                            return replies
                        if reply.reply_to is None:
                            replies.append(reply)
                    elif reply.reply_to == env.seq:
                        return [reply]

    def reply(self, identity: object, request: Envelope, body: Body) -> None:
        core = self._core
        reply = core.envelope(GLOBAL_DOMAIN, body, reply_to=request.seq, hops=0)
        core.wire.reply(identity, encode(reply, signer=core.signer))
        core.counters.sent[body.KIND] += 1


class RequestServer:
    """Answers requests at the node's server; never raises into the receive loop."""

    def __init__(
        self,
        core: Core,
        *,
        decoder: Decoder,
        requests: Requests,
        peers: Peers,
        mesh: MeshKeeper,
        snapshots: Snapshots,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self._core = core
        self._decode = decoder
        self._requests = requests
        self._peers = peers
        self._mesh = mesh
        self._snapshots = snapshots
        self._status = status

    def __call__(self, identity: object, frames: list[Any]) -> None:
        # A status request is read-only and comes from tools without a signing identity.
        signed = bytes(memoryview(frames[0])) != STATUS_TOPIC if frames else True
        env = self._decode(frames, signed=signed)
        if env is None:
            return
        core, peers, reply = self._core, self._peers, self._requests.reply
        core.counters.received[env.kind] += 1
        match env.body:
            case Hello():
                peers.dispatch(env)
                reply(identity, env, peers.hello())
            case StatusRequest():
                reply(identity, env, Status(self._status()))
            case SnapshotRequest(domains=domains, senders=senders):
                self._snapshots.serve(identity, env, set(domains), set(senders))
            case Graft():
                if self._mesh.on_graft(env.domain, env.sender, time.monotonic()):
                    reply(identity, env, Graft())
                else:
                    reply(identity, env, Prune(core.config.prune_backoff, peers.exchange()))
            case Prune(backoff=backoff, peers=addrs):
                self._mesh.on_prune(env.domain, env.sender, backoff, addrs)
            case _:
                core.counters.dropped[f"unexpected_request_{env.kind}"] += 1
