"""An offline LLM for prompt evolution: accuracy responds to a prompt's parts, and it rewrites.

Its chance of answering a question right is the category's base rate plus
the effect of each part the prompt contains, clipped to [0.05, 0.95]
(``EFFECTS``, below). The effects tell the same story as the prompt
learner's simulated LLM — geography wants brevity, math step-by-step
reasoning, science an expert framing, literature the answer format — and add
that worked examples help everywhere a little and history most, while some
parts hurt some categories; commonsense questions want reasoning, sentiment
labels brevity and examples. The static baseline (no parts) is right
40-60% of the time; the best prompt of each category about 90%.

Asked with a meta-prompt (``META_PROMPT_HEAD``, the current prompt and
failing examples), it rewrites: with probability ``insight`` it adds the
missing part that helps the failing examples' category most, else it adds or
drops a part at random; it answers with the new template. Deterministic per
seed and prompt, like its parent.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from metamesh.learners.evolve.genome import PARTS, Genome
from metamesh.learners.prompts.dataset import Question
from metamesh.llm.base import Completion, GenerateOptions
from metamesh.llm.simulated import SimulatedLLM

__all__ = ["EFFECTS", "META_PROMPT_HEAD", "EvolvingLLM"]

META_PROMPT_HEAD = "You improve prompts."


def _row(base: float, *effects: float) -> dict[str, float]:
    return {"base": base, **dict(zip(PARTS, effects, strict=True))}


#: Per category: ``base`` P(right) with no parts, and each part's effect on it.
EFFECTS: Mapping[str, Mapping[str, float]] = {
    # category       base  expert reasoning brevity format examples
    "geography": _row(0.55, 0.00, -0.10, 0.25, 0.05, 0.10),
    "math": _row(0.40, 0.05, 0.35, -0.10, 0.10, 0.10),
    "science": _row(0.50, 0.30, 0.05, -0.05, 0.00, 0.10),
    "literature": _row(0.50, 0.00, -0.05, 0.05, 0.25, 0.15),
    "history": _row(0.60, 0.10, -0.05, 0.05, 0.00, 0.20),
    "art": _row(0.50, 0.05, 0.25, -0.05, 0.00, 0.10),
    "commonsense": _row(0.55, 0.00, 0.25, 0.05, 0.05, 0.10),
    "sentiment": _row(0.60, 0.05, -0.10, 0.20, 0.05, 0.15),
}
_FALLBACK = {"base": 0.5}


class EvolvingLLM(SimulatedLLM):
    """See the module docstring."""

    def __init__(
        self,
        questions: Sequence[Question],
        *,
        effects: Mapping[str, Mapping[str, float]] = EFFECTS,
        seed: int = 0,
        insight: float = 0.7,
        name: str = "sim-evolve",
    ) -> None:
        super().__init__(questions, seed=seed, name=name)
        self._effects = effects
        self._insight = insight
        self._rewrites = 0

    def probability(self, category: str, cues: set[str]) -> float:
        row = self._effects.get(category, _FALLBACK)
        p = row.get("base", 0.5) + sum(row.get(c, 0.0) for c in cues)
        return min(max(p, 0.05), 0.95)

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion:
        if not prompt.startswith(META_PROMPT_HEAD):
            return await super().generate(prompt, options=options)
        self.calls += 1
        self._rewrites += 1
        return Completion(text=self._rewrite(prompt), model=self.name, latency_s=0.0)

    def _rewrite(self, meta_prompt: str) -> str:
        current, _, rest = meta_prompt.partition("Current prompt:\n")[2].partition("\nFailing examples:\n")
        genome = Genome.parse(current)
        categories = Counter(
            line.split("|", 1)[0].removeprefix("- category:").strip()
            for line in rest.splitlines()
            if line.startswith("- category:")
        )
        digest = hashlib.blake2b(f"{self._seed}\x00{self._rewrites}\x00{current}".encode(), digest_size=8)
        rng = random.Random(int.from_bytes(digest.digest(), "big"))
        category = categories.most_common(1)[0][0] if categories else ""
        row = self._effects.get(category, _FALLBACK)
        missing = [p for p in PARTS if p not in genome.parts and p != "examples" and row.get(p, 0.0) > 0]
        if missing and rng.random() < self._insight:
            genome = genome.with_part(max(missing, key=lambda p: row.get(p, 0.0)))
        else:
            part = rng.choice([p for p in PARTS if p != "examples"])
            genome = genome.without_part(part) if part in genome.parts else genome.with_part(part)
        return genome.render()
