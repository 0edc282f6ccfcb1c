"""One objective: the greedy policy a learner converges to is the simulator's best policy.

The learner's reward is the accuracy it is judged by, and the simulated LLM
phrases a right answer the same way whatever the strategy, so on any profile
the policy that maximises the reward is the per-category argmax of the
profile's table. The second and third profiles are built so that seed 000's
``score*10-1`` reward with sentence-phrased answers would pick wrongly: the
most accurate strategy (think, expert) beats the brief one (concise, format)
by 0.1 only.
"""

import asyncio
import random

import pytest

from metamesh.learners.prompts.dataset import CATEGORIES, builtin_trivia, question_stream
from metamesh.learners.prompts.learner import PromptLearner, PromptLearnerConfig
from metamesh.llm.simulated import DEFAULT_PROFILE, SimulatedLLM, best_policy

CUES = ("direct", "reasoning", "brevity", "expert", "format")


def _rotated(best_cues: dict[str, tuple[str, str]], top: float, second: float) -> dict[str, dict[str, float]]:
    """Per category: ``top`` for one cue, ``second`` for a rival, 0.5 for the rest."""
    out = {}
    for cat, (best, rival) in best_cues.items():
        out[cat] = {c: 0.5 for c in CUES} | {best: top, rival: second}
    return out


PROFILES = {
    "default": DEFAULT_PROFILE,
    "think-over-concise": _rotated(
        {
            cat: (("reasoning", "brevity") if i % 2 else ("expert", "format"))
            for i, cat in enumerate(CATEGORIES)
        },
        0.85,
        0.75,
    ),
    "shuffled": _rotated(
        {cat: (CUES[(i + 2) % 5], CUES[(i + 4) % 5]) for i, cat in enumerate(CATEGORIES)}, 0.80, 0.65
    ),
}


async def _converge(
    profile: dict[str, dict[str, float]] | object, seed: int
) -> tuple[dict[str, str], dict[str, str]]:
    questions = builtin_trivia()
    llm = SimulatedLLM(questions, profile=profile, seed=seed)  # type: ignore[arg-type]
    config = PromptLearnerConfig(federated=False, seed=seed, epsilon_floor=0.5)
    learner = PromptLearner(
        llm, question_stream(questions, weights=dict.fromkeys(CATEGORIES, 1.0), seed=seed),
        config=config, categories=CATEGORIES,
    )  # fmt: skip
    for _ in range(9000):
        await learner.step()
    oracle = {c: name for c, (name, _) in best_policy(llm, config.strategies, CATEGORIES).items()}
    return learner.best_strategies(), oracle


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_greedy_policy_of_a_converged_learner_is_the_simulators_best(name: str) -> None:
    greedy, oracle = asyncio.run(_converge(PROFILES[name], seed=random.Random(name).randrange(100)))
    assert greedy == oracle, (name, greedy, oracle)
