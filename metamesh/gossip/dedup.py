"""Replay suppression: per-sender replay windows.

Pure logic. :class:`ReplayWindow` guarantees each ``(sender, seq)`` is
delivered once, the way IPsec does (RFC 4303 §3.4.3): the highest accepted
sequence number and a bitmap of the ``window`` numbers below it. A number
inside the window is NEW or DUPLICATE; one below it is TOO_OLD and refused.
The guarantee holds for as long as a sender is tracked; senders are
LRU-bounded by ``max_senders``, and an evicted sender starts afresh (pair this
with the envelope's timestamp check, which refuses stale messages, so a replay
after eviction is caught).

Use :meth:`ReplayWindow.check` before the expensive work (signature check,
decode) and :meth:`ReplayWindow.accept` after it succeeds, so a forged
message cannot burn a sequence number; :meth:`ReplayWindow.check_and_accept`
does both when there is nothing in between.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from enum import Enum

__all__ = ["ReplayWindow", "Verdict"]

log = logging.getLogger(__name__)


class Verdict(Enum):
    """What a replay window says about a sequence number."""

    NEW = "new"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"


class ReplayWindow:
    """Per-sender sliding replay windows, IPsec-style, LRU-bounded in senders."""

    __slots__ = ("_mask", "_max", "_senders", "_window", "evicted")

    def __init__(self, window: int = 1024, max_senders: int = 4096) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        if max_senders < 1:
            raise ValueError(f"max_senders must be >= 1, got {max_senders!r}")
        self._window = window
        self._mask = (1 << window) - 1
        self._max = max_senders
        # sender -> (highest seq, bitmap): bit i set means seq (highest - i) was accepted
        self._senders: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self.evicted = 0
        """Senders forgotten to stay within ``max_senders``."""

    @property
    def window(self) -> int:
        return self._window

    def check(self, sender: str, seq: int) -> Verdict:
        """Classify ``seq`` from ``sender`` without recording it. Raises ValueError if ``seq < 0``."""
        if seq < 0:
            raise ValueError(f"sequence numbers are >= 0, got {seq!r}")
        st = self._senders.get(sender)
        if st is None:
            return Verdict.NEW
        top, bits = st
        if seq > top:
            return Verdict.NEW
        back = top - seq
        if back >= self._window:
            return Verdict.TOO_OLD
        return Verdict.DUPLICATE if (bits >> back) & 1 else Verdict.NEW

    def accept(self, sender: str, seq: int) -> Verdict:
        """Record ``seq`` from ``sender`` if it is NEW; returns the verdict it had."""
        verdict = self.check(sender, seq)
        if verdict is not Verdict.NEW:
            return verdict
        st = self._senders.get(sender)
        if st is None:
            if len(self._senders) >= self._max:
                old, _ = self._senders.popitem(last=False)
                self.evicted += 1
                log.debug("replay window: evicted sender %r", old)
            self._senders[sender] = (seq, 1)
            return verdict
        top, bits = st
        if seq > top:
            shift = seq - top
            bits = ((bits << shift) | 1) & self._mask if shift < self._window else 1
            top = seq
        else:
            bits |= 1 << (top - seq)
        self._senders[sender] = (top, bits)
        self._senders.move_to_end(sender)
        return verdict

    def check_and_accept(self, sender: str, seq: int) -> bool:
        """True if ``seq`` is NEW for ``sender`` (and records it); False otherwise."""
        return self.accept(sender, seq) is Verdict.NEW

    def highest(self, sender: str) -> int | None:
        """The highest accepted sequence number of ``sender``, or None if not tracked."""
        st = self._senders.get(sender)
        return None if st is None else st[0]

    def forget(self, sender: str) -> None:
        """Drop ``sender``'s window (e.g. after its ``bye``)."""
        self._senders.pop(sender, None)

    def __len__(self) -> int:
        return len(self._senders)
