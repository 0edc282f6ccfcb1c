"""The pool, fusion and the hard limits, without torch."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from metamesh.errors import ConfigError
from metamesh.learners.braid.evaluate import best_single, random_policy, summarise, uniform_ensemble
from metamesh.learners.braid.fusion import Decision, Reply, SimulatedBackend, execute
from metamesh.learners.braid.plan import LatencyEstimates, Planner
from metamesh.learners.braid.pool import SIMULATED_POOL, load_pool, pool_digest
from metamesh.learners.braid.tasks import DEFAULT_MIX, Task, TaskStream, eval_tasks, parse_mix

POOL = SIMULATED_POOL
IDX = {m.name: i for i, m in enumerate(POOL)}


class Scripted:
    """A backend whose replies the test writes."""

    def __init__(self, replies: dict[int, Reply]) -> None:
        self.replies = replies
        self.calls: list[int] = []

    def reply(self, model: int, task: Task) -> Reply:
        self.calls.append(model)
        return self.replies[model]


def task(parts: tuple[str, ...] = ("code",), budget: float = 10.0, limit: float = 3000.0) -> Task:
    return Task(7, "multi" if len(parts) > 1 else parts[0], 0.5, parts, budget, limit)


def test_a_weighted_vote_takes_the_heavier_answer_and_pays_for_every_call() -> None:
    backend = Scripted({0: Reply((2,), 0.9, 80), 1: Reply((0,), 0.6, 300), 2: Reply((0,), 0.6, 310)})
    vote = Decision("vote", (0, 1, 2), weights=(0.45, 0.3, 0.25))
    out = execute(vote, task(), POOL, backend)
    assert out.quality == 1.0  # 0.3 + 0.25 for the right answer beat 0.45 for the wrong one
    assert out.cost == pytest.approx(POOL[0].cost + POOL[1].cost + POOL[2].cost)
    assert out.latency_ms == 310  # parallel: the slowest call
    heavy = Decision("vote", (0, 1, 2), weights=(0.6, 0.2, 0.2))
    assert execute(heavy, task(), POOL, backend).quality == 0.0


def test_a_cascade_stops_at_the_first_confident_answer_and_adds_up_latency() -> None:
    backend = Scripted({0: Reply((1,), 0.4, 80), 1: Reply((0,), 0.8, 300), 4: Reply((0,), 0.9, 500)})
    cascade = Decision("cascade", (0, 1, 4), threshold=0.75)
    out = execute(cascade, task(), POOL, backend)
    assert backend.calls == [0, 1]
    assert (out.quality, out.latency_ms, out.called) == (1.0, 380, (0, 1))
    assert out.cost == pytest.approx(POOL[0].cost + POOL[1].cost)


def test_a_router_answers_each_part_with_its_own_model() -> None:
    backend = Scripted({1: Reply((0, 3), 0.9, 300), 2: Reply((2, 0), 0.9, 320)})
    router = Decision("router", (1, 2), assignment=(1, 2))
    out = execute(router, task(("code", "medical")), POOL, backend)
    assert out.quality == 1.0 and out.called == (1, 2)
    swapped = Decision("router", (1, 2), assignment=(2, 1))
    assert execute(swapped, task(("code", "medical")), POOL, backend).quality == 0.0


def test_simulated_answers_are_the_same_for_the_same_task_and_model() -> None:
    a, b = SimulatedBackend(POOL), SimulatedBackend(POOL)
    t = task(("code", "math", "qa"))
    assert a.reply(3, t) == b.reply(3, t)
    assert {a.reply(m, t) for m in range(len(POOL))} != {a.reply(0, t)}


def test_specialists_beat_the_generalist_on_their_own_type_and_lose_elsewhere() -> None:
    backend = SimulatedBackend(POOL)
    tasks = eval_tasks(400, {"code": 1.0}, budget=10, latency_limit_ms=3000)

    def quality(name: str, ts: list[Task]) -> float:
        return summarise(lambda _t: Decision("single", (IDX[name],)), ts, POOL, backend).quality

    assert quality("coder-7b", tasks) > quality("general-70b", tasks) + 0.05
    qa = eval_tasks(400, {"qa": 1.0}, budget=10, latency_limit_ms=3000)
    assert quality("general-70b", qa) > quality("coder-7b", qa) + 0.2


@pytest.mark.parametrize("budget", [0.5, 1.5, 4.0, 10.0])
def test_no_decision_goes_over_its_budget_and_planned_latency_holds_99_percent(budget: float) -> None:
    backend = SimulatedBackend(POOL)
    tasks = [
        t.with_limits(budget, 1200.0) for t in eval_tasks(1500, DEFAULT_MIX, budget=1, latency_limit_ms=1)
    ]
    result = summarise(random_policy(POOL, seed=3), tasks, POOL, backend)
    assert result.within_budget == 1.0
    assert result.within_latency >= 0.99
    assert sum(result.strategies.values()) == 1500


def test_a_task_nothing_fits_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="no model of the pool fits"):
        random_policy(POOL)(task(budget=0.1))


def test_masks_leave_open_only_choices_that_complete_within_both_limits() -> None:
    plan = Planner(POOL, task(budget=3.0, limit=1000.0), np.array([m.latency_ms for m in POOL]))
    assert not plan.fits[IDX["general-70b"]]  # cost 6
    mask = plan.model_mask("cascade", [IDX["math-13b"]], 3)
    # math (2) + one more + a third must stay within cost 3 and 1000 ms in sequence: only tiny fits twice
    assert not mask.any()
    assert plan.model_mask("cascade", [IDX["math-13b"]], 2)[IDX["tiny-1b"]]
    assert plan.model_mask("cascade", [IDX["math-13b"]], 2)[IDX["coder-7b"]]  # cost 3, 800 ms in sequence
    tight = Planner(POOL, task(budget=3.0, limit=700.0), np.array([m.latency_ms for m in POOL]))
    assert not tight.model_mask("cascade", [IDX["math-13b"]], 2)[IDX["coder-7b"]]  # 800 ms > 700
    assert tight.model_mask("vote", [IDX["math-13b"]], 2)[IDX["coder-7b"]]  # in parallel: 500 ms
    assert plan.size_mask("vote").tolist() == [True, True]


def test_latency_estimates_plan_with_a_high_percentile_once_measured() -> None:
    est = LatencyEstimates(POOL[:1])
    assert est.planned()[0] == pytest.approx(1.5 * POOL[0].latency_ms)
    rng = np.random.default_rng(0)
    samples = POOL[0].latency_ms * np.exp(0.15 * rng.standard_normal(400))
    for s in samples:
        est.observe(0, float(s))
    planned = est.planned()[0]
    assert np.quantile(samples, 0.98) < planned < 1.6 * POOL[0].latency_ms


def test_baselines() -> None:
    backend = SimulatedBackend(POOL)
    tasks = eval_tasks(300, DEFAULT_MIX, budget=10, latency_limit_ms=3000)
    name, single = best_single(tasks, POOL, backend)
    assert name == "general-70b" and single.cost == 6.0
    low = [t.with_limits(1.5, 3000) for t in tasks]
    assert best_single(low, POOL, backend)[0] in ("coder-7b", "medic-7b", "lex-7b")
    uniform = summarise(uniform_ensemble(POOL), low, POOL, backend)
    assert uniform.within_budget == 1.0 and set(uniform.strategies) == {"vote"}


def test_task_streams_follow_their_mix_and_seed() -> None:
    stream = TaskStream({"code": 0.75, "multi": 0.25}, budgets=[1, 2], latency_limit_ms=500, seed=4)
    tasks = [next(stream) for _ in range(2000)]
    kinds = Counter(t.type for t in tasks)
    assert 0.7 < kinds["code"] / 2000 < 0.8
    assert all(2 <= len(t.parts) <= 3 for t in tasks if t.type == "multi")
    again = TaskStream({"code": 0.75, "multi": 0.25}, budgets=[1, 2], latency_limit_ms=500, seed=4)
    assert [next(again) for _ in range(50)] == tasks[:50]


@pytest.mark.parametrize("text", ["code=x", "poetry=1", "code=-1", "code=0"])
def test_a_bad_task_mix_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="task-mix"):
        parse_mix(text)


def test_pool_files(tmp_path) -> None:
    good = tmp_path / "pool.toml"
    good.write_text(
        '[[model]]\nname = "a"\nsize_b = 3\nspecialisation = ["code"]\ncontext = 4096\n'
        'quantisation = "4bit"\n'
        "cost = 0.5\nlatency_ms = 100\nskills = { code = 0.8 }\n"
        '[[model]]\nname = "b"\nsize_b = 8\nspecialisation = []\ncontext = 8192\nquantisation = "8bit"\n'
        'cost = 1\nlatency_ms = 200\nbackend = "ollama:llama3.1:8b"\n'
    )
    pool = load_pool(str(good))
    assert [m.name for m in pool] == ["a", "b"] and pool[1].backend.startswith("ollama:")
    assert pool_digest(pool) != pool_digest(POOL)
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('"4bit"', '"3bit"'))
    with pytest.raises(ConfigError, match="quantisation"):
        load_pool(str(bad))
    with pytest.raises(ConfigError, match="at least two"):
        (tmp_path / "one.json").write_text('{"model": []}')
        load_pool(str(tmp_path / "one.json"))
