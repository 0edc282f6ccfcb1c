"""Evolve a population of prompt templates for one category with seed 003's strategies.

Each iteration makes one candidate per strategy from the current population:

* ``performance``: the best template with one part toggled (a local search step);
* ``error_analysis``: the LLM rewrites the best template from a meta-prompt
  holding it and the samples it failed (the only strategy that costs a call
  besides scoring), through the LLM interface alone; the rewrite is kept in
  its own words (:class:`~metamesh.learners.evolve.genome.Genome` ``text``);
* ``ablation``: the best template with one part removed (simpler is kept if
  it scores as well);
* ``chain_of_thought``: the best template with the reasoning cue added;
* ``few_shot``: the best template with worked examples drawn from samples
  this node answered right.

Every candidate is scored on the node's validation samples (the same ones
for every candidate, so scores compare) and the population keeps the best
``population``. Evolution stops on convergence: a target reached, no
improvement above ``min_improvement`` for ``patience`` iterations, or the
iteration budget spent.

A prompt from a peer is never trusted on its sender's score: :meth:`consider`
scores it on local samples and adopts it only if it beats the local best by
``adopt_margin``.

``credit`` records, per strategy, how much it raised the best score when one
of its candidates became the best: where the gain came from.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from metamesh.learners.evolve.genome import PARTS, STATIC_PROMPT, Genome
from metamesh.learners.prompts.dataset import Question
from metamesh.learners.prompts.scoring import is_correct, score_answer
from metamesh.llm.base import LLM, GenerateOptions

__all__ = ["META_PROMPT_HEAD", "STRATEGIES", "Candidate", "EvolveConfig", "PromptEvolver"]

#: The first line of the meta-prompt that asks an LLM to rewrite a prompt.
META_PROMPT_HEAD = "You improve prompts."

STRATEGIES = ("performance", "error_analysis", "ablation", "chain_of_thought", "few_shot")
#: Fewest local samples of a category a node evolves on.
MIN_VALIDATION = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class EvolveConfig:
    population: int = 4
    validation: int = 16
    """Local samples every candidate is scored on."""
    max_iterations: int = 12
    patience: int = 3
    min_improvement: float = 0.01
    target: float = 0.95
    adopt_margin: float = 0.0
    strategies: tuple[str, ...] = STRATEGIES
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    template: str
    score: float
    strategy: str
    generation: int


@dataclass(slots=True)
class _Scored:
    score: float
    solved: list[Question] = field(default_factory=list)
    failed: list[Question] = field(default_factory=list)


class PromptEvolver:
    """One category's evolving prompts on one node. See the module docstring."""

    def __init__(
        self,
        llm: LLM,
        category: str,
        samples: Sequence[Question],
        *,
        config: EvolveConfig | None = None,
        initial: str = STATIC_PROMPT,
    ) -> None:
        self.config = config or EvolveConfig()
        self.llm = llm
        self.category = category
        self.rng = random.Random(f"{self.config.seed}:{category}")
        pool = [q for q in samples if q.category == category]
        if len(pool) < MIN_VALIDATION:
            raise ValueError(f"{category}: {len(pool)} samples, need at least {MIN_VALIDATION}")
        # Scores on fewer samples are coarser (1/n steps); a small dataset still evolves.
        self.validation = self.rng.sample(pool, min(self.config.validation, len(pool)))
        self.options = GenerateOptions(temperature=0.2, max_tokens=96)
        self.calls = 0
        self.iteration = 0
        self.converged = False
        self.population: list[Candidate] = []
        self.history: list[dict[str, float]] = []
        self._solved: dict[str, Question] = {}
        self._failures: dict[str, list[Question]] = {}  # per template in the population
        self._stale = 0
        self._initial = initial
        self.credit: dict[str, float] = dict.fromkeys(self.config.strategies, 0.0)
        """Per strategy: the best score's rises its candidates made (module docstring)."""

    @property
    def best(self) -> Candidate:
        return self.population[0]

    async def start(self) -> Candidate:
        """Score the initial template: the baseline every improvement is measured from."""
        if not self.population:
            scored = await self._score(self._initial)
            self.population = [Candidate(self._initial, scored.score, "initial", 0)]
            del scored
            self._record()
        return self.best

    async def step(self) -> bool:
        """One iteration; False once evolution has converged (then it does nothing)."""
        await self.start()
        if self.converged:
            return False
        self.iteration += 1
        before = self.best.score
        seen = {c.template for c in self.population}
        for strategy in self.config.strategies:
            template = await self._propose(strategy)
            if template is None or template in seen or "{question}" not in template:
                continue
            seen.add(template)
            scored = await self._score(template)
            if scored.score > self.best.score:
                self.credit[strategy] = self.credit.get(strategy, 0.0) + scored.score - self.best.score
            self._admit(Candidate(template, scored.score, strategy, self.iteration))
        self._stale = self._stale + 1 if self.best.score - before < self.config.min_improvement else 0
        self._record()
        self.converged = (
            self.best.score >= self.config.target
            or self._stale >= self.config.patience
            or self.iteration >= self.config.max_iterations
        )
        return not self.converged

    async def consider(self, template: str, strategy: str = "received") -> bool:
        """A peer's prompt: scored here, adopted only if it beats the local best by the margin."""
        await self.start()
        if "{question}" not in template or any(c.template == template for c in self.population):
            return False
        scored = await self._score(template)
        wins = scored.score > self.best.score + self.config.adopt_margin
        if wins:
            self._admit(Candidate(template, scored.score, strategy, self.iteration))
            self.converged = self.best.score >= self.config.target
        return wins

    async def accuracy(self, questions: Sequence[Question], template: str | None = None) -> float:
        """Share of ``questions`` answered right with ``template`` (the best by default)."""
        right = 0
        for q in questions:
            score = await self._ask(template or self.best.template, q)
            right += is_correct(score)
        return right / len(questions) if questions else 0.0

    # -- internals -------------------------------------------------------------

    async def _ask(self, template: str, q: Question) -> float:
        self.calls += 1
        completion = await self.llm.generate(template.replace("{question}", q.question), options=self.options)
        return score_answer(completion.text, q.answer, q.aliases)

    async def _score(self, template: str) -> _Scored:
        out = _Scored(0.0)
        total = 0.0
        for q in self.validation:
            score = await self._ask(template, q)
            total += score
            (out.solved if is_correct(score) else out.failed).append(q)
        out.score = total / len(self.validation)
        for q in out.solved:
            self._solved[q.id] = q
        self._failures[template] = out.failed
        return out

    def _admit(self, candidate: Candidate) -> None:
        self.population.append(candidate)
        self.population.sort(key=lambda c: (-c.score, c.generation))
        del self.population[self.config.population :]
        kept = {c.template for c in self.population}
        for template in [t for t in self._failures if t not in kept]:
            del self._failures[template]

    async def _propose(self, strategy: str) -> str | None:
        best = Genome.parse(self.best.template)
        match strategy:
            case "performance":
                part = self.rng.choice(PARTS)
                if part == "examples":
                    return self._with_examples(best).render() if part not in best.parts else None
                return (best.without_part(part) if part in best.parts else best.with_part(part)).render()
            case "error_analysis":
                return await self._rewrite()
            case "ablation":
                if not best.parts:
                    return None
                return best.without_part(self.rng.choice(sorted(best.parts))).render()
            case "chain_of_thought":
                return best.with_part("reasoning").render() if "reasoning" not in best.parts else None
            case "few_shot":
                return self._with_examples(best).render()
            case _:
                raise ValueError(f"unknown strategy {strategy!r}")

    def _with_examples(self, genome: Genome) -> Genome:
        solved = [q for q in self._solved.values() if q not in self.validation] or list(self._solved.values())
        if not solved:
            return genome
        picks = self.rng.sample(solved, min(3, len(solved)))
        return genome.with_examples((q.question, q.answer) for q in picks)

    async def _rewrite(self) -> str | None:
        failing = self._failures.get(self.best.template, [])[:5]
        lines = [
            META_PROMPT_HEAD,
            "Rewrite the prompt below so that a model answers questions like the failing ones right.",
            "Keep the {question} slot. Reply with the new prompt only.",
            "Current prompt:",
            self.best.template,
            "Failing examples:",
            *(f"- category: {q.category} | question: {q.question} | answer: {q.answer}" for q in failing),
        ]
        self.calls += 1
        completion = await self.llm.generate("\n".join(lines), options=GenerateOptions(max_tokens=400))
        text = completion.text.strip()
        return Genome.parse(text).render() if "{question}" in text else None  # its own words kept

    def _record(self) -> None:
        scores = [c.score for c in self.population]
        self.history.append(
            {
                "iteration": float(self.iteration),
                "best": self.best.score,
                "mean": sum(scores) / len(scores),
                "calls": float(self.calls),
            }
        )
