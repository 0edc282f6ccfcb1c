"""Prompt evolution with the simulated LLM: better than the static prompt, cheaper together."""

from __future__ import annotations

import random
import statistics

import pytest

from metamesh.learners.evolve.evolver import EvolveConfig, PromptEvolver
from metamesh.learners.evolve.genome import STATIC_PROMPT, Genome
from metamesh.learners.evolve.group import evolve_group
from metamesh.learners.evolve.simulated import EvolvingLLM
from metamesh.learners.prompts.dataset import Question, builtin_trivia, by_category

QUESTIONS = builtin_trivia()
POOLS = by_category(QUESTIONS)


def split(category: str, seed: int, held: int = 30) -> tuple[list[Question], list[Question]]:
    pool = list(POOLS[category])
    random.Random(seed).shuffle(pool)
    return pool[:held], pool[held:]


def test_genomes_render_and_parse_back() -> None:
    g = Genome(frozenset({"expert", "reasoning", "format"})).with_examples([("What is 2+2?", "4")])
    assert Genome.parse(g.render()) == g
    assert Genome.parse(STATIC_PROMPT) == Genome()
    assert "{question}" in g.render() and g.without_part("examples").examples == ()


async def test_evolved_prompts_beat_the_static_prompt_on_held_out_questions() -> None:
    gains = []
    for category in sorted(POOLS):
        held, train = split(category, seed=1)
        ev = PromptEvolver(EvolvingLLM(QUESTIONS, seed=0), category, train, config=EvolveConfig(seed=0))
        await ev.start()
        while await ev.step():
            pass
        assert ev.converged and ev.iteration <= ev.config.max_iterations
        static = await ev.accuracy(held, STATIC_PROMPT)
        evolved = await ev.accuracy(held)
        assert evolved >= static, (category, static, evolved)
        gains.append(evolved - static)
        # The history tracks every iteration, and the best never gets worse.
        best = [h["best"] for h in ev.history]
        assert best == sorted(best) and len(best) == ev.iteration + 1
    # Measured: +0.20 to +0.53 per category, +0.35 on average.
    assert statistics.mean(gains) > 0.2, gains


async def test_a_received_prompt_that_is_worse_here_is_not_adopted() -> None:
    _, train = split("geography", seed=2)
    ev = PromptEvolver(EvolvingLLM(QUESTIONS, seed=3), "geography", train, config=EvolveConfig(seed=3))
    good = Genome(frozenset({"brevity", "format"})).render()  # what geography wants
    bad = Genome(frozenset({"reasoning"})).render()  # what math wants; it hurts geography
    assert await ev.consider(good)
    assert ev.best.template == good and ev.best.strategy == "received"
    calls = ev.calls
    # The sender may claim anything; the prompt is scored here, on local samples, and refused.
    assert not await ev.consider(bad)
    assert ev.best.template == good and ev.calls == calls + len(ev.validation)
    assert not await ev.consider("no slot for the question")  # not even scored
    assert ev.calls == calls + len(ev.validation)


async def _run(federated: bool, seed: int, nodes: int = 3) -> tuple[float, float]:
    calls, accuracy = [], []
    for category in sorted(POOLS):
        held, train = split(category, seed)
        evolvers = [
            PromptEvolver(EvolvingLLM(QUESTIONS, seed=seed * 10 + i), category, train[i::nodes],
                          config=EvolveConfig(seed=seed * 10 + i))
            for i in range(nodes)
        ]  # fmt: skip
        await evolve_group(evolvers, federated=federated)
        calls.append(statistics.mean(e.calls for e in evolvers))
        accuracy.append(statistics.mean([await e.accuracy(held) for e in evolvers]))
    return statistics.mean(calls), statistics.mean(accuracy)


@pytest.mark.timeout(120)
async def test_federated_evolution_reaches_the_same_accuracy_with_fewer_calls_per_node() -> None:
    local = [await _run(False, seed) for seed in (0, 1, 2)]
    fed = [await _run(True, seed) for seed in (0, 1, 2)]
    local_calls, local_acc = statistics.mean(c for c, _ in local), statistics.mean(a for _, a in local)
    fed_calls, fed_acc = statistics.mean(c for c, _ in fed), statistics.mean(a for _, a in fed)
    # Measured over these seeds: local 191 calls per node per category at 0.846, federated 156 at 0.873.
    assert fed_calls < 0.9 * local_calls, (local, fed)
    assert fed_acc >= local_acc - 0.02, (local, fed)


async def test_the_commonsense_and_sentiment_sets_evolve_too() -> None:
    from metamesh.learners.prompts.dataset import builtin_dataset

    for name in ("commonsense", "sentiment"):
        questions = builtin_dataset(name)
        assert len(questions) == 60 and {q.category for q in questions} == {name}
        pool = list(questions)
        random.Random(4).shuffle(pool)
        held, train = pool[:20], pool[20:]
        ev = PromptEvolver(EvolvingLLM(questions, seed=1), name, train, config=EvolveConfig(seed=1))
        await ev.start()
        while await ev.step():
            pass
        static, evolved = await ev.accuracy(held, STATIC_PROMPT), await ev.accuracy(held)
        assert evolved >= static + 0.1, (name, static, evolved)


def test_a_peer_cannot_make_a_node_spend_its_llm_calls_on_scoring_its_prompts() -> None:
    from metamesh.learners.evolve.learner import MAX_INBOX, MAX_PER_SENDER, EvolveLearner
    from metamesh.protocol import Prompt

    _, train = split("math", seed=5)
    lrn = EvolveLearner(EvolvingLLM(QUESTIONS), train, categories=["math"])
    for i in range(100):
        lrn.merge("flooder", "math", Prompt("math", f"variant {i}: {{question}}", 1.0, 16))
    assert lrn.waiting == MAX_PER_SENDER
    for i in range(100):
        lrn.merge(f"peer{i}", "math", Prompt("math", f"other {i}: {{question}}", 1.0, 16))
    assert lrn.waiting == MAX_INBOX
