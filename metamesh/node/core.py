"""What every part of a node shares: its config, identity, transport, counters, event log and tasks.

No policy here: sending an envelope, owning tasks, and the few sets (domains) more than one
part reads. Everything runs on the node's loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from metamesh.gossip.transport import Transport
from metamesh.node.config import NodeConfig
from metamesh.node.counters import Counters
from metamesh.node.state import NodeDir
from metamesh.protocol import Body, Envelope, Signer, Verifier, encode
from metamesh.protocol.batch import BATCH_MAX, UNBATCHED_KINDS, batch_frames

__all__ = ["Core"]

log = logging.getLogger(__name__)


class Core:
    """Shared by the parts of one node; made by :class:`~metamesh.node.runtime.Node`."""

    def __init__(self, config: NodeConfig, home: NodeDir, node_id: str, transport: Transport | None) -> None:
        self.config = config
        self.dir = home
        self.id = node_id
        self.transport: Transport | None = transport  # set by ``start`` when the default one is made
        self.counters = Counters()
        self.events = home.events()
        self.seq = home.sequence()
        self.domains: set[str] = set(config.domain)
        self.rng = random.Random(f"{config.random_seed}:{node_id}")
        self.signer: Signer | None = None
        self.verifier: Verifier | None = None
        self.pub_endpoint = ""
        self.router_endpoint = ""
        self.started_at = 0.0
        self.stopped = False
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        #: Messages published in this turn of the loop, by (domain, hops), sent at its end.
        self._pending: dict[tuple[str, int], list[tuple[Envelope, list[Any]]]] = {}
        self._flush: asyncio.Handle | None = None
        self.batch_max = BATCH_MAX
        """Members per batch; 1 sends every message alone (a network with version-1 peers)."""
        self.signed: Callable[[Envelope, tuple[Any, ...]], None] | None = None
        """Told, on a signed node, each coalesced message's final frames (after the topic) once
        sent: signed alone, or proved by its batch (PROTOCOL.md section 8.1), what it keeps."""

    @property
    def wire(self) -> Transport:
        """The transport, once the node has started."""
        if self.transport is None:
            raise RuntimeError("the node has not started")
        return self.transport

    # -- sending ---------------------------------------------------------------

    def envelope(
        self, domain: str, body: Body, *, reply_to: int | None = None, hops: int | None = None
    ) -> Envelope:
        """A new envelope from this node with the next sequence number."""
        return Envelope(
            sender=self.id,
            seq=self.seq.next(),
            domain=domain,
            body=body,
            created=time.time(),
            hops=self.config.limits.max_hops // 2 if hops is None else hops,
            reply_to=reply_to,
        )

    def publish(self, domain: str, body: Body, *, hops: int | None = None) -> tuple[Envelope, list[Any]]:
        """Encode and publish; returns the envelope and its frames (a message alone: what the
        node keeps and serves). Never blocks.

        Small messages (no arrays) published in one turn of the loop are coalesced per domain and
        hop count and sent at its end: one alone as itself, several as one batch frame
        (PROTOCOL.md section 2.2). Anything else goes out at once, after what is pending. On a
        signed node a coalesced message is signed when it is sent, by its batch or alone: until
        then its frames here are its header only; then they become its final form (signed alone,
        or proved by its batch), and :attr:`signed` is told.
        """
        env = self.envelope(domain, body, hops=hops)
        if body.ARRAYS or body.KIND in UNBATCHED_KINDS or self.batch_max <= 1:
            frames = encode(env, signer=self.signer)
            self.counters.sent[body.KIND] += 1
            self.counters.bytes_sent += sum(memoryview(f).nbytes for f in frames)
            self.flush()
            self.wire.publish(frames)
            return env, frames
        frames = encode(env, by_batch=self.signer is not None)
        self.counters.sent[body.KIND] += 1
        self.counters.bytes_sent += len(frames[0]) + len(frames[1])
        key = (domain, env.hops)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = []
        pending.append((env, frames))
        if len(pending) >= self.batch_max:
            self._send(key, self._pending.pop(key))
        if self._flush is None:
            try:
                self._flush = asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop running: nothing will come back to send it
                self.flush()
        return env, frames

    def flush(self) -> None:
        """Send what is pending now (also done at the end of every turn of the loop)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        pending, self._pending = self._pending, {}
        for key, members in pending.items():
            self._send(key, members)

    def _send(self, key: tuple[str, int], members: list[tuple[Envelope, list[Any]]]) -> None:
        signer, signed = self.signer, self.signed
        if len(members) == 1:
            env, frames = members[0]
            if signer is not None:
                frames.append(signer(frames[1:]))
                if signed is not None:
                    signed(env, tuple(frames[1:]))
            self.wire.publish(frames)
        elif members:
            batch = batch_frames(self.id, key[0], key[1], [m[1] for m in members], signer=signer)
            self.wire.publish(batch)
            self.counters.sent["batch"] += 1
            if signer is not None:
                for env, frames in members:  # each becomes its proved form, a message alone
                    frames.extend((batch[1], batch[-1]))
                    if signed is not None:
                        signed(env, tuple(frames[1:]))

    # -- tasks -----------------------------------------------------------------

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run ``coro`` as a task the node owns (cancelled at stop; a failure stops the node)."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"{self.id}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task.cancelled() or self.stopped:
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s failed: %r; stopping the node", task.get_name(), exc, exc_info=exc)
            self.events.write("task_failed", task=task.get_name(), error=repr(exc))
            self.stopping.set()

    async def cancel_tasks(self, timeout: float) -> None:
        self.flush()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=timeout)
            if pending:
                log.error("%d tasks did not stop within %.0f s", len(pending), timeout)
