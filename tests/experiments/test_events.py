"""Event-log lines decoded into typed records: kinds nobody reads and malformed lines are dropped."""

from __future__ import annotations

from metamesh.experiments.events import Adoption, Done, Eval, Monitor, NodeLog, Round, decode


def test_known_kinds_become_records_and_the_rest_is_dropped() -> None:
    assert decode({"event": "eval", "episodes": 25, "accuracy": 0.5, "t": 1}) == Eval(25, 0.5)
    assert decode({"event": "round", "round": 3, "heldout_loss": 0.25}) == Round(3, 0.25)
    assert decode({"event": "refused"}) == Adoption(adopted=False)
    assert decode({"event": "monitor", "episodes": 10, "drift": 0.1, "changes": ["drift"]}) == Monitor(
        10, 0.1, None, None, ("drift",)
    )
    assert decode({"event": "peer", "peer": "x"}) is None
    assert decode({"event": "eval", "episodes": "many", "accuracy": 0.5}) is None
    assert decode({"event": "round"}) is None


def test_a_done_line_is_always_done_whatever_its_figures() -> None:
    done = decode({"event": "done", "accuracy": {"not": "a number"}, "best": {"math": "think"}, "calls": 12})
    assert done == Done(accuracy=None, best={"math": "think"}, calls=12)
    log = NodeLog.of("n0", [{"event": "eval", "episodes": 1, "accuracy": 0.1}, {"event": "done"}, "junk"])  # type: ignore[list-item]
    assert log.done == Done() and log.last(Eval) == Eval(1, 0.1) and log.first(Round) is None
