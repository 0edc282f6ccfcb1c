import random

import pytest

from metamesh.gossip.membership import LOCAL, Membership, MembershipConfig, PeerState


def test_new_peer_is_alive_at_once() -> None:
    m = Membership(LOCAL)
    t = m.observe("a", 10.0)
    assert t is not None and t.old is None and t.new is PeerState.ALIVE
    assert m.alive() == ["a"]


def test_silence_makes_suspect_then_dead_at_the_configured_times() -> None:
    cfg = MembershipConfig(heartbeat_interval=1, suspect_after=5, dead_after=30)
    m = Membership(cfg)
    m.observe("a", 0.0)
    assert m.tick(4.99) == []
    [t] = m.tick(5.0)
    assert (t.old, t.new) == (PeerState.ALIVE, PeerState.SUSPECT)
    assert m.tick(29.9) == []
    [t] = m.tick(30.0)
    assert (t.old, t.new) == (PeerState.SUSPECT, PeerState.DEAD)


def test_return_needs_consecutive_heartbeats() -> None:
    cfg = MembershipConfig(heartbeat_interval=1, suspect_after=5, dead_after=30, rejoin_heartbeats=3)
    m = Membership(cfg)
    m.observe("a", 0.0)
    m.tick(40.0)
    assert m.state("a") is PeerState.DEAD
    assert m.observe("a", 41.0) is None
    assert m.observe("a", 42.0) is None
    t = m.observe("a", 43.0)
    assert t is not None and t.new is PeerState.ALIVE


def test_spaced_out_heartbeats_do_not_bring_a_peer_back() -> None:
    cfg = MembershipConfig(heartbeat_interval=1, suspect_after=5, dead_after=30, rejoin_heartbeats=3, slack=2)
    m = Membership(cfg)
    m.observe("a", 0.0)
    m.tick(6.0)
    for t in (7.0, 10.0, 13.0, 16.0):  # 3 s apart: more than interval * slack
        assert m.observe("a", t) is None
    assert m.state("a") is PeerState.SUSPECT


def test_flaky_peer_flips_at_most_once_per_suspect_period() -> None:
    """Heartbeats with random gaps around the suspect bound: every return to ALIVE
    needs rejoin_heartbeats in a row, so transitions stay rare."""
    cfg = MembershipConfig(
        heartbeat_interval=1, suspect_after=3, dead_after=30, rejoin_heartbeats=3, slack=1.5
    )
    m = Membership(cfg)
    rng = random.Random(7)
    now = 0.0
    m.observe("a", now)
    transitions = 0
    while now < 1000:
        now += rng.uniform(0.5, 3.5)
        transitions += len(m.tick(now))
        if m.observe("a", now) is not None:
            transitions += 1
    assert transitions <= 1000 / cfg.suspect_after


def test_bye_forgets_the_peer() -> None:
    m = Membership(LOCAL)
    m.observe("a", 0.0)
    t = m.bye("a", 0.1)
    assert t is not None and t.new is PeerState.DEAD
    assert m.state("a") is None
    t = m.observe("a", 0.2)
    assert t is not None and t.old is None


def test_tracked_peers_are_bounded_dead_first() -> None:
    m = Membership(MembershipConfig(max_peers=3))
    for i, p in enumerate("abc"):
        m.observe(p, float(i))
    m.tick(32.0)  # a, b, c dead
    m.observe("b", 33.0)
    m.observe("d", 34.0)
    assert len(m.snapshot()) == 3 and "a" not in m.snapshot()


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="suspect_after"):
        MembershipConfig(heartbeat_interval=5, suspect_after=1, dead_after=3)


def test_absent_peers_are_listed_with_how_long_and_can_be_forgotten() -> None:
    m = Membership(LOCAL)
    m.observe("a", 0.0)
    m.observe("b", 0.0)
    m.tick(1.0)  # both suspect at t=1
    m.observe("b", 1.1)  # b heard again, still suspect until a streak
    m.tick(3.0)  # a dead at t=3
    assert dict(m.absent(4.0)) == {"a": 1.0, "b": 3.0}
    m.forget("a")
    assert m.state("a") is None and [p for p, _ in m.absent(4.0)] == ["b"]
    assert m.observe("a", 5.0) is not None  # back as a new peer


def test_a_node_that_stood_still_does_not_blame_its_peers() -> None:
    from metamesh.gossip.membership import LOCAL

    m = Membership(LOCAL)
    m.observe("p", 0.0)
    m.forgive(10.0)  # we were paused from t=0.2 to t=10.2
    assert m.tick(10.2) == [] and m.state("p") is PeerState.ALIVE
    assert [t.new for t in m.tick(11.5)] == [PeerState.SUSPECT]  # silence after the pause still counts
