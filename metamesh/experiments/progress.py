"""The live progress line of an experiment: one line that fits the terminal, or periodic plain lines.

Experiments report a :class:`Status` (counts, not text) several times a second;
:func:`format_status` turns it into a line no wider than the terminal, dropping
the least useful parts first, and :class:`ProgressDisplay` redraws that line in
place on a terminal, or, when the stream is a file or a pipe, writes a plain
line when an arm starts, every ``interval`` seconds and when an arm's nodes are
all done -- a log never fills with carriage-return redraws.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["ProgressDisplay", "Status", "format_eta", "format_status"]


@dataclass(frozen=True, slots=True)
class Status:
    """Where one arm of an experiment is: ``done`` of ``total`` units summed over its nodes."""

    arm: str
    nodes: int
    done: int
    total: int | None
    """None when the arm's length is not known in advance (no percentage, no ETA)."""
    unit: str
    finished: int = 0
    """Nodes that have logged ``done``."""
    note: str = ""
    """A short figure, such as the mean accuracy so far; dropped for width after the finished nodes."""


def format_eta(seconds: float) -> str:
    """``42 s``, ``3:05`` or ``1:02:05``: short enough for a progress line."""
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_status(
    status: Status, *, width: int, elapsed: float, position: tuple[int, int] | None = None
) -> str:
    """One progress line of at most ``width`` characters.

    ``elapsed`` is the seconds since the arm started (for the ETA); ``position`` is
    (this arm's number, arms in the run). Parts are dropped from the least useful
    (the finished nodes, then the note) to the most (the arm and its counts), then
    the line is cut.
    """
    head = status.arm if position is None else f"{status.arm} ({position[0]}/{position[1]})"
    if status.total:
        count = f"{status.done}/{status.total} {status.unit}"
        percent = f"{min(status.done / status.total, 1.0):.0%}"
    else:
        count, percent = f"{status.done} {status.unit}", ""
    eta = ""
    if status.total and 0 < status.done < status.total and elapsed > 0:
        eta = "ETA " + format_eta(elapsed * (status.total - status.done) / status.done)
    nodes = f"{status.finished}/{status.nodes} nodes done"
    # (part, priority): the lowest priority goes first when the line is too wide.
    parts = [(head, 5), (count, 4), (percent, 2), (eta, 3), (nodes, 0), (status.note, 1)]
    kept = [(p, rank) for p, rank in parts if p]
    while len(kept) > 1 and len("  ".join(p for p, _ in kept)) > width:
        kept.remove(min(kept, key=lambda pr: pr[1]))
    line = "  ".join(p for p, _ in kept)
    if len(line) <= width:
        return line
    return line[: width - 1] + "…" if width > 0 else ""


class ProgressDisplay:
    """A callable taking :class:`Status` reports; writes to ``stream`` (a TTY: in place; else: plain lines).

    Not thread-safe; experiments call it from the one thread that polls their nodes.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        arms: int | None = None,
        tty: bool | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] | None = None,
    ) -> None:
        self._stream = stream
        self._arms = arms
        self._tty = stream.isatty() if tty is None else tty
        self._interval = interval
        self._clock = clock
        self._columns = columns or (lambda: shutil.get_terminal_size((80, 24)).columns)
        self._arm = ""
        self._seen = 0
        self._started = 0.0
        self._last_write = 0.0
        self._last_line = ""
        self._finished_written = False
        self._drawn = False

    def __call__(self, status: Status) -> None:
        now = self._clock()
        new_arm = status.arm != self._arm
        if new_arm:
            self._end_line()
            self._arm, self._started, self._finished_written = status.arm, now, False
            self._seen += 1
        position = (self._seen, self._arms) if self._arms and self._seen <= self._arms else None
        # A terminal's last column wraps on some emulators: keep one free.
        width = max(self._columns() - 1, 20)
        line = format_status(status, width=width, elapsed=now - self._started, position=position)
        if self._tty:
            if line != self._last_line:
                self._stream.write("\r" + line + "\x1b[K")
                self._stream.flush()
                self._drawn = True
            self._last_line = line
            return
        all_done = status.finished >= status.nodes > 0
        if new_arm or now - self._last_write >= self._interval or (all_done and not self._finished_written):
            self._stream.write(line + "\n")
            self._stream.flush()
            self._last_write = now
            self._finished_written = self._finished_written or all_done

    def _end_line(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
            self._last_line = ""

    def close(self) -> None:
        """End a line drawn in place, so what follows starts on its own line."""
        self._end_line()
