"""One process per node home: an OS file lock on ``HOME/lock``, held for the process's life.

Two nodes started in one directory would share one identity, one sequence
lease and one checkpoint, and each would see the other as itself going alive,
suspect and dead. The first to start takes ``flock(LOCK_EX)`` on the lock file
and writes its PID into it; a second fails at once with :class:`HomeInUse`
naming that PID. The kernel drops the lock when the holder exits, however it
exits (``kill -9`` included), so a restart on the same home never finds a
stale lock. The file itself stays: unlinking it would let a third process lock
a new file while the second still holds the old one.

The lock belongs to the open file, not the process: a child forked without
``exec`` keeps it while it runs (the descriptor is closed on ``exec``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from pathlib import Path

from metamesh.errors import HomeInUse, StateError

__all__ = ["LOCK_NAME", "HomeLock"]

log = logging.getLogger(__name__)

LOCK_NAME = "lock"


class HomeLock:
    """An exclusive lock on a home directory. :meth:`acquire` takes it; :meth:`release` or the
    process's exit gives it back. Garbage collection releases it too, silently."""

    def __init__(self, home: Path, fd: int) -> None:
        self.home = home
        self._fd = fd

    @classmethod
    def acquire(cls, home: Path) -> HomeLock:
        """Lock ``home`` (an existing directory) for this process; never blocks.

        Raises HomeInUse when another process (or another NodeDir in this one) holds it,
        StateError when the lock file cannot be opened. A filesystem without locks is
        logged and the home used unlocked.
        """
        path = home / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(f"cannot open {path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                log.warning("cannot lock %s (%s); nothing stops a second node using this home", path, exc)
                return cls(home, fd)
            holder = _read_pid(fd)
            os.close(fd)
            raise HomeInUse(home, holder) from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # the lock holds without the PID; only the message is poorer
            log.warning("cannot write this process's PID into %s (%s)", path, exc)
        return cls(home, fd)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Give the lock back (idempotent). The PID is cleared first, while still held."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor of the open file drops the flock

    def __del__(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def _read_pid(fd: int) -> int | None:
    """The PID the holder wrote, if it is there yet (it is written just after the lock is taken)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
