"""Seen-cache and replay windows: no duplicate passes, bounds hold, windows slide correctly."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metamesh.gossip.dedup import ReplayWindow, Verdict

N, DUP, OLD = Verdict.NEW, Verdict.DUPLICATE, Verdict.TOO_OLD


def test_replay_window_hand_computed() -> None:
    w = ReplayWindow(window=4)
    assert w.check("s", 5) is N
    assert w.accept("s", 5) is N and w.highest("s") == 5
    assert w.check("s", 5) is DUP
    assert w.accept("s", 3) is N  # inside window, not seen
    assert w.accept("s", 3) is DUP
    assert w.check("s", 2) is N  # 5 - 2 = 3 < 4: inside
    assert w.check("s", 1) is OLD  # 5 - 1 = 4: outside
    assert w.accept("s", 7) is N  # window now 4..7; 5 and 3 keep their bits (5 yes, 3 drops out)
    assert [w.check("s", q) for q in range(2, 9)] == [OLD, OLD, N, DUP, N, DUP, N]
    assert w.accept("s", 100) is N  # a jump beyond the window clears it
    assert [w.check("s", q) for q in (96, 97, 99, 100)] == [OLD, N, N, DUP]
    assert w.check("other", 0) is N
    with pytest.raises(ValueError):
        w.check("s", -1)


def test_check_does_not_record() -> None:
    w = ReplayWindow()
    assert w.check("s", 1) is N and w.check("s", 1) is N and len(w) == 0
    assert w.check_and_accept("s", 1) and not w.check_and_accept("s", 1)
    w.forget("s")
    assert w.check_and_accept("s", 1)


def test_replay_window_lru_bound() -> None:
    w = ReplayWindow(window=8, max_senders=3)
    for s in "abc":
        w.accept(s, 1)
    w.accept("a", 2)  # a is now most recently used
    w.accept("d", 1)  # evicts b
    assert len(w) == 3 and w.highest("b") is None and w.highest("a") == 2 and w.evicted == 1
    assert w.check("a", 1) is DUP and w.check("c", 1) is DUP


@settings(max_examples=300, deadline=None)
@given(
    window=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
)
def test_no_duplicate_ever_passes_random_interleavings(window: int, seed: int, n: int) -> None:
    """Messages from 4 senders arrive reordered (bounded jitter) and duplicated; none passes twice,
    every NEW is truly first, and nothing within the window of the highest is refused as too old."""
    rng = random.Random(seed)
    stream = []
    for s in "abcd":
        for q in range(n // 4 + 1):
            stream.append((q + rng.uniform(0, window * 1.5), s, q))
            if rng.random() < 0.3:  # a duplicate arrives later, sometimes much later
                stream.append((q + rng.uniform(0, window * 3), s, q))
    stream.sort()
    w = ReplayWindow(window=window, max_senders=4)
    passed: set[tuple[str, int]] = set()
    for _, s, q in stream:
        top = w.highest(s)
        verdict = w.accept(s, q)
        if verdict is N:
            assert (s, q) not in passed
            passed.add((s, q))
        elif verdict is DUP:
            assert (s, q) in passed
        else:
            assert top is not None and top - q >= window
        if top is not None and (s, q) not in passed and 0 <= top - q < window:
            pytest.fail(f"{(s, q)} inside the window was refused")
