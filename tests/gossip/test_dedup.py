"""Seen-cache and replay windows: no duplicate passes, bounds hold, windows slide correctly."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metamesh.gossip.dedup import ReplayWindow, SeenCache, Verdict

N, DUP, OLD = Verdict.NEW, Verdict.DUPLICATE, Verdict.TOO_OLD


def test_seen_cache_basics_and_ttl() -> None:
    c = SeenCache(capacity=10, ttl=5.0)
    assert c.check_and_add(("a", 1), 0.0)
    assert c.check_and_add(("a", 2), 1.0)
    assert not c.check_and_add(("a", 1), 4.9)
    assert c.check_and_add(("a", 1), 5.0)  # expired exactly at ttl
    assert not c.check_and_add(("a", 1), 9.9)  # re-added at 5.0
    assert ("a", 2) not in c and len(c) == 1  # ("a", 2) expired at 6.0
    with pytest.raises(ValueError):
        c.check_and_add(("a", 3), 1.0)
    with pytest.raises(ValueError):
        SeenCache(0, 1.0)
    with pytest.raises(ValueError):
        SeenCache(1, 0.0)


def test_seen_cache_capacity_drops_oldest() -> None:
    c = SeenCache(capacity=3, ttl=100.0)
    for i in range(5):
        assert c.check_and_add(i, float(i))
    assert len(c) == 3 and 0 not in c and 1 not in c and 4 in c
    assert not c.check_and_add(2, 6.0)
    assert c.check_and_add(0, 6.0)  # forgotten: the cache alone cannot promise more


def test_seen_cache_is_amortised_constant_time() -> None:
    def run(n: int) -> float:
        c = SeenCache(capacity=n // 2, ttl=10.0)
        t0 = time.perf_counter()
        for i in range(n):
            c.check_and_add(("s", i), i * 0.001)
        return (time.perf_counter() - t0) / n

    small, big = min(run(20_000) for _ in range(3)), min(run(200_000) for _ in range(3))
    assert big < 5 * small  # linear work per call would make this ~10x


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 30)), max_size=300),
    capacity=st.integers(50, 200),
)
def test_seen_cache_never_passes_a_duplicate_within_bounds(
    keys: list[tuple[str, int]], capacity: int
) -> None:
    # 93 distinct keys at most; with capacity >= distinct keys and a long ttl nothing is forgotten
    c = SeenCache(capacity=max(capacity, 93), ttl=1e9)
    passed = [k for i, k in enumerate(keys) if c.check_and_add(k, float(i))]
    assert len(passed) == len(set(passed)) == len(set(keys))


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
