"""Checkpoints: the node's learned state and live peers on disk, written atomically; restored at start.

A full disk or an unwritable directory is logged once and the node keeps running in memory;
the sequence number is leased apart from the checkpoint (``state.SequenceLease``), so a lost
checkpoint never makes a restarted node reuse one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from metamesh.errors import StateError
from metamesh.node.core import Core
from metamesh.node.hosting import LearnerHost
from metamesh.node.peers import Peers
from metamesh.node.state import encode_checkpoint
from metamesh.protocol import PeerAddr

__all__ = ["MAX_REMEMBERED_PEERS", "Checkpoints"]

log = logging.getLogger(__name__)

#: Peers kept in a checkpoint, greeted again after a restart.
MAX_REMEMBERED_PEERS = 32


class Checkpoints:
    """Writes and restores one node's checkpoint."""

    def __init__(self, core: Core, peers: Peers, host: LearnerHost) -> None:
        self._core = core
        self._peers = peers
        self._host = host
        self._generation = 0
        self._last_event = 0.0
        self.failed = False
        """The last write failed (the node runs on in memory until one succeeds)."""
        self.restored = False
        self.remembered: list[PeerAddr] = []
        """Peers alive at the last checkpoint: a restarted node says hello to them even without seeds."""

    def restore(self) -> None:
        state = self._core.dir.load_checkpoint()
        if state is None:
            return
        self.restored = True
        for row in state.get("peers", [])[:MAX_REMEMBERED_PEERS]:
            if isinstance(row, list | tuple) and len(row) == 3 and all(isinstance(x, str) for x in row):
                self.remembered.append(PeerAddr(*row))
        learner_state = state.get("learner")
        learner = self._host.learner
        if learner is not None and isinstance(learner_state, dict):
            learner.load_state(learner_state)
        log.info("node %s restored its checkpoint", self._core.id)

    def _data(self) -> tuple[int, bytes]:
        """The node's state now, encoded, with its generation (newer states have higher ones)."""
        core, peers = self._core, self._peers
        state: dict[str, Any] = {"node": core.id, "saved_at": time.time(), "seq": core.seq.peek}
        alive = peers.membership.alive()
        state["peers"] = [peers.records[p].addr.pack() for p in alive if p in peers.records][
            :MAX_REMEMBERED_PEERS
        ]
        if self._host.learner is not None:
            state["learner"] = self._host.learner.state()
        self._generation += 1
        return self._generation, encode_checkpoint(state)

    def write(self, *, record: bool = False) -> bool:
        """Write a checkpoint now, waiting for the disk (at stop)."""
        generation, data = self._data()
        try:
            size = self._core.dir.write_checkpoint(data, generation)
        except StateError as exc:
            return self._failure(exc)
        return self._success(size, record)

    async def write_async(self) -> bool:
        """:meth:`write`, with the write and its fsyncs in a worker thread.

        The state is taken here, in the event loop, so it is consistent; only the disk is
        waited on elsewhere. A disk that takes seconds to sync (a busy SD card, a shared
        volume) must not hold up heartbeats and messages for as long.
        """
        generation, data = self._data()
        try:
            size = await asyncio.to_thread(self._core.dir.write_checkpoint, data, generation)
        except StateError as exc:
            return self._failure(exc)
        return self._success(size, False)

    def _failure(self, exc: StateError) -> bool:
        if not self.failed:
            log.error("checkpoint failed (%s); the node keeps running in memory", exc)
            self._core.events.write("checkpoint_failed", error=str(exc))
        self.failed = True
        return False

    def _success(self, size: int | None, record: bool) -> bool:
        if size is None:  # a newer checkpoint got to the disk first
            return True
        self.failed = False
        now = time.monotonic()
        if record or now - self._last_event >= 1.0:  # logged at most once a second
            self._last_event = now
            learner = self._host.learner
            episodes = learner.summary().get("episodes") if learner is not None else None
            self._core.events.write("checkpoint", bytes=size, seq=self._core.seq.peek, episodes=episodes)
        return True

    async def loop(self) -> None:
        while True:
            await self.write_async()
            await asyncio.sleep(self._core.config.checkpoint_interval)
