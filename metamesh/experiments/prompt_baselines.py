"""Baselines a skeptic would pick for the prompts study, measured in the same run.

Every strategy is asked every held-out question (the nodes' own held-out set,
:func:`~metamesh.learners.prompts.dataset.held_out_split`) through the run's
LLM, seeded like the run. From that exhaustive evaluation:

* ``best single``: the one strategy with the best accuracy over all
  categories, used for every category;
* ``oracle``: the best strategy of each category.

Both are chosen on the held-out questions themselves (the most a fixed
strategy or a per-category choice could be credited with), but scored with
the LLM's own fresh draws, so they carry sampling noise like the arms do: a
simulated LLM is asked ``passes`` times per question (cheap), a real one once
(20 questions a category: about 10 points of noise per category, 4 on the
mean). For a simulated profile its own table gives the oracle's expected
accuracy too (``expected_oracle``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from metamesh.learners.prompts.dataset import Question, by_category, held_out_split, questions_for
from metamesh.learners.prompts.scoring import is_correct, score_answer
from metamesh.learners.prompts.strategies import DEFAULT_STRATEGIES, render
from metamesh.llm.base import LLM, GenerateOptions

__all__ = ["NEAR_ZERO", "Baselines", "measure_baselines"]

#: Times a simulated LLM is asked each held-out question per strategy (a real one: once).
SIM_PASSES = 5
#: An accuracy at or below this is "near zero": no strategy was learned, whatever a table says.
NEAR_ZERO = 0.05


@dataclass(slots=True)
class Baselines:
    """Held-out accuracy per strategy and category, and the two baselines drawn from it."""

    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    """strategy -> category -> accuracy."""
    expected_oracle: float | None = None
    """The simulator's table's oracle accuracy (the simulated default only)."""

    @property
    def categories(self) -> list[str]:
        return sorted({c for row in self.accuracy.values() for c in row})

    def mean(self, strategy: str) -> float:
        row = self.accuracy[strategy]
        return sum(row.values()) / len(row) if row else 0.0

    @property
    def best_single(self) -> tuple[str, float]:
        name = max(self.accuracy, key=self.mean)
        return name, self.mean(name)

    @property
    def oracle(self) -> tuple[dict[str, str], float]:
        cats = self.categories
        best = {c: max(self.accuracy, key=lambda s: self.accuracy[s].get(c, 0.0)) for c in cats}
        score = sum(self.accuracy[best[c]][c] for c in cats) / len(cats) if cats else 0.0
        return best, score

    def document(self) -> dict[str, object]:
        name, single = self.best_single
        policy, oracle = self.oracle
        return {
            "per_strategy": self.accuracy,
            "best_single": {"strategy": name, "accuracy": single},
            "oracle": {"policy": policy, "accuracy": oracle, "expected": self.expected_oracle},
        }


async def _evaluate(
    llm: LLM, held: list[Question], strategies: Mapping[str, str], passes: int
) -> dict[str, dict[str, float]]:
    options = GenerateOptions(temperature=0.2, max_tokens=96)
    out: dict[str, dict[str, float]] = {}
    try:
        for name, template in strategies.items():
            row: dict[str, float] = {}
            for cat, qs in sorted(by_category(held).items()):
                right = 0
                for q in qs * passes:
                    text = (await llm.generate(render(template, q.question), options=options)).text
                    right += is_correct(score_answer(text, q.answer, q.aliases))
                row[cat] = right / (len(qs) * passes)
            out[name] = row
    finally:
        await llm.aclose()
    return out


def measure_baselines(
    spec: str, *, seed: int, eval_size: int = 20, dataset: str = "",
    strategies: Mapping[str, str] = DEFAULT_STRATEGIES,
) -> Baselines:  # fmt: skip
    """Ask every strategy every held-out question through the LLM ``spec`` (blocks; one event loop
    of its own: call it outside one). Raises ConfigError for a bad spec, the LLM's errors as they are."""
    from metamesh.llm.simulated import SimulatedLLM, best_policy
    from metamesh.llm.spec import parse_llm_spec

    questions = questions_for(dataset)
    held = held_out_split(questions, eval_size)
    llm = parse_llm_spec(spec, questions=questions, seed=seed * 100 + 99)
    simulated = isinstance(llm, SimulatedLLM)
    passes = SIM_PASSES if simulated else 1
    result = Baselines(asyncio.run(_evaluate(llm, held, strategies, passes)))
    if isinstance(llm, SimulatedLLM):
        policy = best_policy(llm, strategies, sorted(by_category(held)))
        result.expected_oracle = sum(p for _, p in policy.values()) / len(policy) if policy else None
    return result
