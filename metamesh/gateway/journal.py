"""Accepted ratings made durable before the gateway says 200: an append-only journal in the node's home.

A rating is applied to the learner in memory, written as one JSON line (``[seq, decision, category,
strategy, backend, score]``) to ``HOME/feedback.journal`` and fsynced before its reply. fsyncs are
batched: the ratings written while one fsync runs (in a worker thread, so the loop keeps serving)
all wait on the next, so a burst of ratings costs a few fsyncs, not one each. On restart the node
restores its checkpoint (which records the last rating's ``seq`` it holds), then
:meth:`FeedbackJournal.replay` hands back every rating after it; a torn last line (a kill in the
middle of a write, never acknowledged) is skipped. At each checkpoint the journal drops the ratings
an earlier checkpoint already on disk holds (see ``GatewayLearner.state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import msgspec

__all__ = ["FeedbackJournal", "Rating"]

log = logging.getLogger(__name__)

JOURNAL_NAME = "feedback.journal"


class Rating(msgspec.Struct, array_like=True, frozen=True):
    """One accepted rating, as the learner applied it."""

    seq: int
    decision: str
    category: str
    strategy: str
    backend: str
    score: float


_decoder = msgspec.json.Decoder(Rating)


class FeedbackJournal:
    """The journal of one node's accepted ratings (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        """The highest ``seq`` written or replayed; the next rating gets ``seq + 1``."""
        self.fsyncs = 0
        self._fd = -1
        self._waiting: list[asyncio.Future[None]] = []
        self._syncing: asyncio.Task[None] | None = None

    def replay(self) -> list[Rating]:
        """Every whole rating in the journal, in order (a torn or foreign line is skipped and logged)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        found: list[Rating] = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                found.append(_decoder.decode(line))
            except msgspec.DecodeError:
                log.warning("%s:%d: skipped a line that is not a whole rating (a write cut short)",
                            self.path, number)  # fmt: skip
        if found:
            self.seq = max(self.seq, *(r.seq for r in found))
        return found

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def append(self, rating: Rating) -> None:
        """Write ``rating`` now and return once it is on disk (OSError if the disk refuses)."""
        if self._fd < 0:
            self.open()
        os.write(self._fd, msgspec.json.encode(rating) + b"\n")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(done)
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.create_task(self._sync(), name="feedback-journal")
        await done

    async def _sync(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(os.fsync, self._fd)
            except OSError as exc:
                for f in batch:
                    if not f.done():
                        f.set_exception(exc)
                continue
            self.fsyncs += 1
            for f in batch:
                if not f.done():
                    f.set_result(None)

    def compact(self, upto: int) -> None:
        """Drop the ratings with ``seq <= upto`` (a checkpoint on disk holds them); skipped while an
        fsync is running (the next checkpoint compacts)."""
        if self._fd < 0 or (self._syncing is not None and not self._syncing.done()):
            return
        written = self.replay()
        keep = [r for r in written if r.seq > upto]
        if len(keep) == len(written):
            return  # nothing to drop
        if not keep:
            os.ftruncate(self._fd, 0)
            return
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(msgspec.json.encode(r) + b"\n" for r in keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self.open()

    async def aclose(self) -> None:
        if self._syncing is not None:
            with contextlib.suppress(Exception):
                await self._syncing
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
