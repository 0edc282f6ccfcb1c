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
failing examples), it rewrites as a weak, uninformed LLM would
(:class:`SimulatedRewriter`): it never sees the effects above, only the
meta-prompt's text, and toggles one instruction picked at random, in words
of its own (so a rewrite is free text, not one of the canonical templates).
Whatever evolution gains with it comes from scoring candidates, not from an
oracle. Deterministic per seed and prompt, like its parent.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

from metamesh.learners.evolve.evolver import META_PROMPT_HEAD
from metamesh.learners.evolve.genome import PARTS
from metamesh.learners.prompts.dataset import Question
from metamesh.llm.base import Completion, GenerateOptions
from metamesh.llm.simulated import CUES, SimulatedLLM

__all__ = ["EFFECTS", "META_PROMPT_HEAD", "EvolvingLLM", "SimulatedRewriter"]


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


class SimulatedRewriter:
    """A weak rewriter that knows nothing of the answering model: see the module docstring."""

    #: Its own words for each instruction: phrasings the answering model reads as the same cue.
    WORDING: Mapping[str, tuple[str, ...]] = {
        "expert": ("As an expert in this subject, answer carefully.", "You are a world-class specialist."),
        "reasoning": ("Break this down before you answer.", "Reason it through, then answer."),
        "brevity": ("Reply with just the answer.", "Give only the answer, nothing else."),
        "format": ("Provide a brief, accurate answer.",),
    }

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self.rewrites = 0

    def rewrite(self, meta_prompt: str) -> str:
        """The meta-prompt's current prompt with one instruction added or dropped at random."""
        self.rewrites += 1
        current = meta_prompt.partition("Current prompt:\n")[2].partition("\nFailing examples:\n")[0]
        digest = hashlib.blake2b(f"{self._seed}\x00{self.rewrites}\x00{current}".encode(), digest_size=8)
        rng = random.Random(int.from_bytes(digest.digest(), "big"))
        part = rng.choice([p for p in PARTS if p != "examples"])
        lines = current.splitlines()
        phrases = CUES[part]
        if any(ph in line.lower() for line in lines for ph in phrases):
            return "\n".join(line for line in lines if not any(ph in line.lower() for ph in phrases))
        at = len(lines) - 1 if lines and lines[-1].strip().lower().endswith("answer:") else len(lines)
        return "\n".join([*lines[:at], rng.choice(self.WORDING[part]), *lines[at:]])


class EvolvingLLM(SimulatedLLM):
    """See the module docstring."""

    def __init__(
        self,
        questions: Sequence[Question],
        *,
        effects: Mapping[str, Mapping[str, float]] = EFFECTS,
        seed: int = 0,
        name: str = "sim-evolve",
    ) -> None:
        super().__init__(questions, seed=seed, name=name)
        self._effects = effects
        self.rewriter = SimulatedRewriter(seed)

    def probability(self, category: str, cues: set[str]) -> float:
        row = self._effects.get(category, _FALLBACK)
        p = row.get("base", 0.5) + sum(row.get(c, 0.0) for c in cues)
        return min(max(p, 0.05), 0.95)

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion:
        if not prompt.startswith(META_PROMPT_HEAD):
            return await super().generate(prompt, options=options)
        self.calls += 1
        return Completion(text=self.rewriter.rewrite(prompt), model=self.name, latency_s=0.0)
