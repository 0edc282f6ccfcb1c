import random

import pytest

from metamesh.gossip.mesh import Mesh, MeshConfig


def test_grafts_up_to_d_when_below_the_low_mark() -> None:
    m = Mesh(MeshConfig(d=6, d_lo=4, d_hi=12))
    actions = m.heartbeat(0.0, [f"p{i}" for i in range(10)], random.Random(1))
    assert len(actions.graft) == 6 and m.members == set(actions.graft)
    assert m.heartbeat(1.0, [f"p{i}" for i in range(10)], random.Random(1)).graft == []


def test_prunes_back_to_d_above_the_high_mark_and_backs_off() -> None:
    m = Mesh(MeshConfig(d=3, d_lo=2, d_hi=4, prune_backoff=10))
    for i in range(6):
        assert m.on_graft(f"p{i}", 0.0) is (i < 4)
    m.members.update({"p4", "p5"})  # e.g. grafts accepted concurrently
    actions = m.heartbeat(1.0, [f"p{i}" for i in range(6)], random.Random(2))
    assert len(actions.prune) == 3 and len(m.members) == 3
    pruned = actions.prune[0]
    assert not m.on_graft(pruned, 5.0)
    assert m.on_graft(pruned, 11.5) or len(m.members) >= 4


def test_mesh_stays_in_band_under_churn() -> None:
    cfg = MeshConfig(d=6, d_lo=4, d_hi=12, prune_backoff=3)
    m = Mesh(cfg)
    rng = random.Random(7)
    peers = [f"p{i}" for i in range(40)]
    alive = set(rng.sample(peers, 20))
    for t in range(500):
        for p in rng.sample(peers, 3):  # churn
            alive.symmetric_difference_update({p})
        if rng.random() < 0.3:
            m.on_graft(rng.choice(peers), float(t))
        m.heartbeat(float(t), alive, rng)
        assert m.members <= alive
        assert min(cfg.d_lo, len(alive)) <= len(m.members) <= cfg.d_hi


def test_members_that_die_are_dropped() -> None:
    m = Mesh(MeshConfig(d=2, d_lo=1, d_hi=3))
    m.heartbeat(0.0, ["a", "b"], random.Random(0))
    actions = m.heartbeat(1.0, ["b", "c"], random.Random(0))
    assert "a" in actions.dropped and "a" not in m.members


def test_bad_config() -> None:
    with pytest.raises(ValueError):
        MeshConfig(d=2, d_lo=3, d_hi=4)


def test_a_member_late_with_its_heartbeats_keeps_its_link() -> None:
    m = Mesh(MeshConfig(d=2, d_lo=1, d_hi=3))
    m.heartbeat(0.0, ["a", "b"], random.Random(0))
    actions = m.heartbeat(1.0, ["b"], random.Random(0), keep=["a", "b"])  # a is suspect: kept
    assert actions.dropped == [] and m.members == {"a", "b"}
    assert m.heartbeat(2.0, ["b"], random.Random(0), keep=["b"]).dropped == ["a"]  # a is dead


def test_peers_that_answered_are_grafted_first_and_pruned_last() -> None:
    fakes = [f"fake{i}" for i in range(30)]
    for seed in range(20):
        m = Mesh(MeshConfig(d=3, d_lo=2, d_hi=4))
        m.heartbeat(0.0, [*fakes, "real"], random.Random(seed), preferred=["real"])
        assert "real" in m.members
        m.members.update(fakes[:5])
        actions = m.heartbeat(1.0, [*fakes, "real"], random.Random(seed), preferred=["real"])
        assert "real" not in actions.prune and "real" in m.members


def test_a_peer_that_did_not_answer_is_not_grafted_again_before_its_backoff() -> None:
    m = Mesh(MeshConfig(d=1, d_lo=1, d_hi=2, prune_backoff=5))
    assert m.heartbeat(0.0, ["x"], random.Random(0)).graft == ["x"]
    m.on_prune("x", 0.5, 5.0)  # what an unanswered graft does
    assert m.heartbeat(1.0, ["x"], random.Random(0)).graft == [] and not m.members
    assert m.heartbeat(6.0, ["x"], random.Random(0)).graft == ["x"]
