"""The learner contract at work on the in-memory twin: validation before relay, guarded merges,
snapshots for late joiners, declared kinds, meta. No sockets."""

from __future__ import annotations

import pytest

from metamesh.node.learner import STATE_KINDS, Learner
from metamesh.node.runtime import Node
from metamesh.protocol import Body, Meta, QTable, StatusRequest
from tests.twin import Recorder, Twin, eventually, insight, qtable

pytestmark = pytest.mark.timeout(60)


def insane(body: Body) -> str | None:
    return "insane_values" if isinstance(body, QTable) and float(body.values.max()) > 100 else None


async def test_a_message_failing_validation_at_a_relaying_node_is_not_forwarded(twin: Twin) -> None:
    a, b, c = await twin.line(b_learner=Recorder(refuse=insane), c_learner=Recorder())
    a.publish("math", qtable(1e6))  # refused at b
    good = a.publish("math", insight(0.2))  # after it, on the same path
    await eventually(lambda: ("a", "insight", "math") in c.latest, "the good message at c")
    assert b.latest[("a", "insight", "math")].seq == good.seq
    assert ("a", "qtable", "math") not in b.latest and ("a", "qtable", "math") not in c.latest
    assert (
        b.counters.rejected["insane_values"] == 1 and b.counters.rejected_by_peer["a"]["insane_values"] == 1
    )
    assert b.counters.relayed["insight"] == 1
    assert "qtable" not in b.counters.relayed and c.counters.received["qtable"] == 0


async def test_a_refused_message_is_not_served_to_a_late_joiner(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a], learner=Recorder(refuse=insane))
    await twin.linked(a, b)
    a.publish("math", qtable(1e6))
    a.publish("math", insight(0.3))
    await eventually(lambda: ("a", "insight", "math") in b.latest, "b keeping the insight")
    joiner_learner = Recorder()
    joiner = await twin.node("late", seeds=[b], learner=joiner_learner, start=False)
    twin.network.partition([twin.transports["b"], twin.transports["late"]], [twin.transports["a"]])
    await joiner.start()
    await eventually(lambda: ("a", "insight", "math") in joiner.latest, "the snapshot at the late joiner")
    assert ("a", "qtable", "math") not in joiner.latest and "qtable" not in joiner_learner.kinds()


async def test_a_late_joiner_starts_from_its_seeds_snapshot(twin: Twin) -> None:
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a])
    await twin.linked(a, b)
    a.publish("math", qtable(2.0))
    a.publish("art", insight(0.1))  # another domain: not in a math joiner's snapshot
    await eventually(lambda: ("a", "qtable", "math") in b.latest, "b keeping a's table")
    learner = Recorder()
    joiner = await twin.node("late", seeds=[b], learner=learner)
    await eventually(lambda: ("a", "math") in {(s, d) for s, d, _ in learner.merged}, "a's table merged")
    assert ("a", "qtable", "math") in joiner.latest and all(d == "math" for _, d, _ in learner.merged)


async def test_a_learner_raising_in_merge_is_counted_and_the_node_keeps_serving(twin: Twin) -> None:
    a = await twin.node("a")
    learner = Recorder(fail=frozenset({"qtable"}))
    b = await twin.node("b", seeds=[a], learner=learner)
    c = await twin.node("c", seeds=[b])
    t = twin.transports
    twin.network.partition([t["a"], t["b"]], [t["b"], t["c"]])
    await twin.linked(a, b)
    await twin.linked(b, c)
    for i in range(3):
        a.publish("math", qtable(float(i)))
    a.publish("math", insight(0.4))
    await eventually(lambda: "insight" in learner.kinds(), "b merging the insight after the failures")
    assert b.counters.merge_failed == {"qtable": 3}
    assert b.status()["counters"]["merge_failed"] == {"qtable": 3}
    assert ("a", "qtable", "math") not in b.latest  # a failed merge is neither kept...
    assert "qtable" not in b.counters.relayed  # ...nor relayed
    [reply] = await c.request(b.router_endpoint, StatusRequest(), timeout=5)
    assert reply.body.report["counters"]["merge_failed"] == {"qtable": 3}  # type: ignore[attr-defined]
    events = [e for e in _events(b) if e["event"] == "merge_failed"]
    assert len(events) == 1 and events[0]["kind"] == "qtable" and "RuntimeError" in events[0]["reason"]


def _events(node: Node) -> list[dict[str, object]]:
    import json

    path = node.dir.path / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_learner_gets_only_the_kinds_it_accepts_yet_the_node_keeps_and_relays_the_rest(
    twin: Twin,
) -> None:
    a, b, c = await twin.line(b_learner=Recorder(accepts=frozenset({"qtable"})), c_learner=Recorder())
    b_learner = b.learner
    assert isinstance(b_learner, Recorder)
    a.publish("math", insight(0.5))
    a.publish("math", qtable(1.0))
    await eventually(lambda: {"insight", "qtable"} <= set(c.learner.kinds()), "both at c")  # type: ignore[union-attr]
    assert b_learner.kinds() == ["qtable"] and ("a", "insight", "math") in b.latest


async def test_a_learner_that_shares_a_kind_it_does_not_publish_is_not_published(twin: Twin) -> None:
    learner = Recorder()
    learner.publishes = frozenset({"insight"})
    a = await twin.node("a", learner=learner)
    learner.pending = [("math", qtable(1.0)), ("math", insight(0.1))]
    await eventually(lambda: a.counters.sent["insight"] == 1, "the insight published")
    assert a.counters.sent["qtable"] == 0 and ("a", "qtable", "math") not in a.latest


async def test_the_newest_meta_is_applied_kept_and_served(twin: Twin) -> None:
    learner = Recorder()
    a = await twin.node("a")
    b = await twin.node("b", seeds=[a], learner=learner)
    await twin.linked(a, b)
    a.publish("_global", Meta(2, params={"lr": 0.1}))
    await eventually(lambda: learner.metas, "the meta applied")
    a.publish("_global", Meta(1, params={"lr": 0.5}))  # older version: not applied
    a.publish("math", insight(0.1))
    await eventually(lambda: ("a", "insight", "math") in b.latest, "what came after it")
    assert [m.version for m in learner.metas] == [2] and b.meta is not None and b.meta.version == 2
    joiner = await twin.node("late", seeds=[b])
    await eventually(lambda: joiner.meta is not None and joiner.meta.version == 2, "the meta at the joiner")


async def test_a_sender_refused_again_and_again_is_quarantined_and_then_ignored(twin: Twin) -> None:
    a = await twin.node("a")
    learner = Recorder(refuse=insane)
    b = await twin.node("b", seeds=[a], learner=learner, quarantine_above=3.0)
    await twin.linked(a, b)
    for _ in range(5):
        a.publish("math", qtable(1e6))
    await eventually(lambda: "a" in b.scores.quarantined, "a quarantined")
    a.publish("math", insight(0.1))
    await eventually(lambda: b.counters.rejected["quarantined"] >= 1, "a's next message refused")
    assert not learner.merged and "a" in b.membership.alive()  # still known, not merged


def test_a_learner_needs_only_step_share_and_merge() -> None:
    class Minimal(Learner):
        async def step(self) -> None:
            return None

        def share(self) -> list[tuple[str, Body]]:
            return []

        def merge(self, sender: str, domain: str, body: Body) -> None:
            return None

    lrn = Minimal()
    assert lrn.validate("p", "math", insight(0.1)) is None
    assert lrn.accepts == lrn.publishes == STATE_KINDS
    assert (lrn.affinity(), lrn.summary(), lrn.state()) == ({}, {}, {})
    assert (lrn.drain_events(), lrn.drain_blame()) == ((), ())
    with pytest.raises(TypeError):
        Learner()  # type: ignore[abstract]
