"""A node's state on disk: identity, sequence lease, checkpoints, event log.

Layout of a node directory::

    lock                held (flock) by the process running the node, its PID inside
    identity            the node id (one line)
    seq                 the sequence lease: no number at or above it was ever used
    checkpoint          the latest checkpoint (msgpack), replaced atomically
    checkpoint.prev     the one before, kept in case the latest is torn
    events.jsonl        one JSON object per line: what happened, when
    events.N.jsonl      older lines, rotated by size (higher N older)

Checkpoints are written to a temporary file, fsynced, renamed over the old one,
and the directory is fsynced, so a ``kill -9`` at any point leaves either the
old or the new checkpoint whole. Sequence numbers are leased in blocks: the
lease is on disk before any number in it is used, so a restarted node never
reuses one.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from metamesh.errors import StateError
from metamesh.node.eventfiles import DEFAULT_KEEP, DEFAULT_MAX_BYTES, rotate
from metamesh.node.homelock import HomeLock

__all__ = ["EventLog", "NodeDir", "SequenceLease", "pack_state", "unpack_state"]

log = logging.getLogger(__name__)

_ARRAY_EXT = 1
_CHECKPOINT_MAGIC = b"MMCK1\n"


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return msgpack.ExtType(_ARRAY_EXT, msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes()]))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != _ARRAY_EXT:
        return msgpack.ExtType(code, data)
    dtype, shape, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()


def pack_state(state: Any) -> bytes:
    """Serialise plain data with numpy arrays (checkpoints only; never on the wire)."""
    return msgpack.packb(state, default=_default, use_bin_type=True)  # type: ignore[no-any-return]


def encode_checkpoint(state: dict[str, Any]) -> bytes:
    """A checkpoint's bytes: taken where the state lives, so the write can happen elsewhere."""
    return _CHECKPOINT_MAGIC + pack_state(state)


def unpack_state(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either its old or its new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from exc


class SequenceLease:
    """Per-sender sequence numbers that stay strictly increasing across crashes.

    Two guards, so that a full disk cannot make a restarted node reuse a number:
    a lease on disk (no number at or above it was handed out), and the clock,
    since numbers start at no less than the microseconds since the epoch (a
    node sends far fewer than a million messages a second, so every number it
    used is below the clock's reading at its next start). Either suffices;
    the lease covers a clock stepped back, the clock covers a lease that could
    not be written. When the disk refuses the lease, the node says so once and
    keeps counting in memory.
    """

    def __init__(self, path: Path, block: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._block = block
        start = 0
        if path.exists():
            try:
                start = int(path.read_text().strip())
            except (OSError, ValueError) as exc:
                raise StateError(f"{path} is unreadable; refusing to risk reusing sequence numbers") from exc
        self._next = max(start, int(clock() * 1_000_000))
        self._leased = self._next
        self.failed = False
        self._extend()

    def _extend(self) -> None:
        self._leased = self._next + self._block
        try:
            atomic_write(self._path, f"{self._leased}\n".encode())
        except StateError as exc:
            if not self.failed:
                log.error("cannot renew the sequence lease (%s); counting on in memory", exc)
            self.failed = True
            return
        self.failed = False

    def next(self) -> int:
        if self._next >= self._leased:
            self._extend()
        value = self._next
        self._next += 1
        return value

    @property
    def peek(self) -> int:
        return self._next


class EventLog:
    """Append-only JSONL log of what a node did, for reports and post-mortems.

    Every line is flushed as it is written. A file that would grow past
    ``max_bytes`` is rotated (``events.jsonl`` to ``events.1.jsonl``, ...;
    ``keep`` files at most, see :mod:`metamesh.node.eventfiles`); read the
    whole log back with :func:`metamesh.node.eventfiles.read_events`.
    """

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._keep = max(keep, 1)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the node's life
        self._size = self._fh.tell()
        self._lock = threading.Lock()  # a rotation swaps the file under any other writer
        self.failed = False

    def _rotate(self) -> None:
        self._fh.close()
        try:
            rotate(self._path, self._keep)
        except OSError as exc:
            log.warning("cannot rotate event log %s (%s); it keeps growing", self._path, exc)
            self._max_bytes = 1 << 62  # say it once
        self._fh = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - as in __init__
        self._size = self._fh.tell()

    def write(self, event: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 6), "event": event, **fields}
        line = json.dumps(record, default=_json_default, separators=(",", ":")) + "\n"  # ASCII
        try:
            with self._lock:
                if self._size and self._size + len(line) > self._max_bytes:
                    self._rotate()
                self._fh.write(line)
                self._fh.flush()
                self._size += len(line)
        except (OSError, ValueError) as exc:  # ValueError: the file could not be reopened
            if not self.failed:
                log.error("event log %s is not writable (%s); continuing without it", self._path, exc)
            self.failed = True

    def close(self) -> None:
        self._fh.close()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


class NodeDir:
    """The directory that makes a node the same node after a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create node directory {path}: {exc.strerror or exc}") from exc
        if not os.access(path, os.W_OK):
            raise StateError(f"node directory {path} is not writable")
        # One process per home (raises HomeInUse); held until close() or the process's exit.
        self._lock = HomeLock.acquire(path)
        # Checkpoints are written from worker threads too: one at a time, never an older over a newer.
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_written = 0

    def close(self) -> None:
        """Release the home's lock, so another process may use it (idempotent)."""
        self._lock.release()

    def identity(self, preferred: str = "") -> str:
        """The node's id: read from disk, or created once (``preferred`` or a random one)."""
        ident = self.path / "identity"
        if ident.exists():
            node_id = ident.read_text().strip()
            if preferred and preferred != node_id:
                raise StateError(f"{self.path} belongs to node {node_id!r}, not {preferred!r}")
            return node_id
        node_id = preferred or f"n-{secrets.token_hex(4)}"
        atomic_write(ident, (node_id + "\n").encode())
        return node_id

    def sequence(self) -> SequenceLease:
        return SequenceLease(self.path / "seq")

    def events(self) -> EventLog:
        return EventLog(self.path / "events.jsonl")

    def save_checkpoint(self, state: dict[str, Any]) -> int:
        """Write a checkpoint atomically, keeping the previous one; returns its size."""
        size = self.write_checkpoint(encode_checkpoint(state))
        assert size is not None
        return size

    def write_checkpoint(self, data: bytes, generation: int | None = None) -> int | None:
        """Write an encoded checkpoint (:func:`encode_checkpoint`); safe from any thread.

        With a ``generation``, a checkpoint older than one already written is skipped
        (returns None): two writes in flight finish in either order, and the newer
        state must be the one on disk. Raises StateError.
        """
        with self._checkpoint_lock:
            if generation is not None and generation <= self._checkpoint_written:
                return None
            latest = self.path / "checkpoint"
            if latest.exists():
                try:
                    os.replace(latest, self.path / "checkpoint.prev")
                except OSError as exc:
                    raise StateError(f"cannot keep the previous checkpoint: {exc.strerror or exc}") from exc
            atomic_write(latest, data)
            if generation is not None:
                self._checkpoint_written = generation
            return len(data)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest whole checkpoint, falling back to the previous one if the latest is torn."""
        for name in ("checkpoint", "checkpoint.prev"):
            path = self.path / name
            if not path.exists():
                continue
            try:
                data = path.read_bytes()
                if not data.startswith(_CHECKPOINT_MAGIC):
                    raise ValueError("bad magic")
                state = unpack_state(data[len(_CHECKPOINT_MAGIC) :])
                if not isinstance(state, dict):
                    raise ValueError("not a map")
                return state
            except (OSError, ValueError, msgpack.ExtraData, msgpack.FormatError) as exc:
                log.warning("checkpoint %s is unreadable (%s); trying an older one", path, exc)
        return None
