"""Peer scores: quarantine past one threshold, release below a lower one after decay."""

from __future__ import annotations

import pytest

from metamesh.gossip.score import PeerScores


def test_quarantine_has_hysteresis_and_decays() -> None:
    s = PeerScores(above=4.0, below=1.0, half_life=10.0)
    changes = [s.charge("p", t) for t in range(5)]
    assert changes[:4] == [None] * 4 and changes[4] is not None and changes[4].quarantined
    assert "p" in s.quarantined
    # Just under the upper threshold is not enough to come back: it must fall below the lower one.
    assert s.tick(5.0) == []
    assert s.score("p", 10.0) > 2.0 and s.tick(10.0) == []
    released = s.tick(40.0)  # three half-lives later
    assert [c.peer for c in released] == ["p"] and not released[0].quarantined
    assert "p" not in s.quarantined


def test_an_occasional_bad_message_never_quarantines() -> None:
    s = PeerScores(above=4.0, below=1.0, half_life=10.0)
    assert all(s.charge("p", t * 10.0) is None for t in range(100))  # one per half-life settles near 2
    assert not s.quarantined


def test_fake_sender_ids_cannot_grow_memory_or_free_the_quarantined() -> None:
    s = PeerScores(above=2.0, below=0.5, half_life=60.0, max_peers=10)
    for t in range(3):
        s.charge("bad", float(t))
    assert "bad" in s.quarantined
    for i in range(1000):
        s.charge(f"fake-{i}", 3.0)
    assert len(s.report(3.0)) <= 10 and "bad" in s.quarantined


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError):
        PeerScores(above=1.0, below=1.0, half_life=1.0)
    with pytest.raises(ValueError):
        PeerScores(above=2.0, below=1.0, half_life=0.0)
