"""Learning with peers in one process: what the merge rule is worth on the non-IID split."""

from __future__ import annotations

import asyncio
import random
import statistics
from dataclasses import replace

from metamesh.experiments.prompts import node_weights
from metamesh.learners.factory import parse_weights
from metamesh.learners.prompts.dataset import CATEGORIES, builtin_trivia, by_category, question_stream
from metamesh.learners.prompts.learner import PromptLearner, PromptLearnerConfig
from metamesh.llm.simulated import SimulatedLLM


def _run(config: PromptLearnerConfig, seed: int, episodes: int = 150) -> float:
    questions = builtin_trivia()
    pools = by_category(questions)
    held = [q for c in sorted(pools) for q in random.Random(12345).sample(pools[c], 20)]
    train = [q for q in questions if q not in set(held)]

    async def run() -> float:
        llm = SimulatedLLM(questions, seed=seed)
        learners = [
            PromptLearner(
                llm,
                question_stream(
                    train, weights=parse_weights(node_weights(i), CATEGORIES), seed=seed * 100 + i
                ),
                config=replace(config, seed=seed * 100 + i),
                categories=CATEGORIES,
            )
            for i in range(4)
        ]
        for _ in range(episodes):
            for i, learner in enumerate(learners):
                await learner.step()
                for domain, body in learner.share():
                    for j, other in enumerate(learners):
                        if j != i:
                            other.merge(f"n{i}", domain, body)
        return statistics.mean([await learner.evaluate(held) for learner in learners])

    return asyncio.run(run())


def test_visit_weighted_merging_beats_a_plain_mean_on_the_non_iid_split() -> None:
    seeds = range(3)
    weighted = statistics.mean(_run(PromptLearnerConfig(), s) for s in seeds)
    plain = statistics.mean(_run(PromptLearnerConfig(visit_weighted=False), s) for s in seeds)
    local = statistics.mean(_run(PromptLearnerConfig(federated=False), s) for s in seeds)
    assert weighted >= plain + 0.03, (weighted, plain)
    assert weighted >= local + 0.08, (weighted, local)
