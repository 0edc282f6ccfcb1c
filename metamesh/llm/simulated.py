"""An offline LLM whose accuracy depends on the prompt, so strategy learning is real.

It finds the dataset question inside the prompt, reads the prompt's cues —
``reasoning`` ("step by step"), ``brevity`` ("only the answer"), ``expert``
("you are an expert"), ``format`` ("Question: ... Answer:" scaffolding) — and
answers right with the probability its profile gives for that category and
cue (the best cue present counts; no cue is ``direct``). A wrong answer is
partly right (scores 0.5) with probability ``partial`` where the answer has
several words, else another answer of the same category. A right answer is
the bare answer whatever the prompt's cues (the scorer gives it 1.0), so
which strategy is best depends on the profile alone, never on phrasing: the
best policy under a profile is the argmax of its table
(:func:`best_policy`).

Deterministic: a call's outcome depends only on the seed, the prompt and how
many times that prompt was asked before on this instance — never on timing.

The default profile tells seed 000's story: geography is answered best when
asked for only the answer, math when asked to think step by step, science
when framed for an expert, literature with the answer format scaffold,
history directly, art with step-by-step reasoning. A uniformly random
strategy is right about 60% of the time, the best one about 90%.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from metamesh.errors import ConfigError
from metamesh.learners.prompts.dataset import Question, by_category
from metamesh.learners.prompts.scoring import normalize, score_answer
from metamesh.llm.base import Completion, GenerateOptions

__all__ = ["CUES", "DEFAULT_PROFILE", "SimulatedLLM", "best_policy", "load_profile"]

#: Cue name -> phrases that signal it (matched lower-case).
CUES: Mapping[str, tuple[str, ...]] = {
    "reasoning": ("step by step", "let's think", "break this down", "reason it through"),
    "brevity": ("only the answer", "nothing else", "one word", "just the answer"),
    "expert": ("you are an expert", "as an expert", "you are a world-class"),
    "format": ("brief, accurate answer", "provide a brief"),
    "examples": ("examples:", "for example"),
}

#: P(right answer) per category and cue; "direct" is a prompt with no cue.
DEFAULT_PROFILE: Mapping[str, Mapping[str, float]] = {
    "geography": {"direct": 0.60, "reasoning": 0.45, "brevity": 0.90, "expert": 0.55, "format": 0.50},
    "math": {"direct": 0.45, "reasoning": 0.90, "brevity": 0.40, "expert": 0.60, "format": 0.65},
    "science": {"direct": 0.55, "reasoning": 0.60, "brevity": 0.45, "expert": 0.90, "format": 0.50},
    "literature": {"direct": 0.55, "reasoning": 0.45, "brevity": 0.60, "expert": 0.50, "format": 0.90},
    "history": {"direct": 0.90, "reasoning": 0.55, "brevity": 0.50, "expert": 0.60, "format": 0.45},
    "art": {"direct": 0.50, "reasoning": 0.90, "brevity": 0.45, "expert": 0.55, "format": 0.60},
}
DEFAULT_FALLBACK = {"direct": 0.6, "reasoning": 0.6, "brevity": 0.6, "expert": 0.6, "format": 0.6}


def load_profile(path: Path) -> dict[str, dict[str, float]]:
    """A user profile: JSON ``{category: {cue: probability}}`` with cues from ``CUES`` or ``direct``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read simulated-LLM profile {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected an object of categories")
    allowed = {"direct", *CUES}
    out: dict[str, dict[str, float]] = {}
    for cat, row in doc.items():
        if not isinstance(row, dict) or not set(row) <= allowed:
            raise ConfigError(
                f"{path}: {cat!r} must map cues ({', '.join(sorted(allowed))}) to probabilities"
            )
        for cue, p in row.items():
            if not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise ConfigError(f"{path}: {cat}.{cue} = {p!r} is not a probability")
        out[cat] = {k: float(v) for k, v in row.items()}
    return out


def cues_of(prompt: str) -> set[str]:
    low = prompt.lower()
    found = {cue for cue, phrases in CUES.items() if any(p in low for p in phrases)}
    if "question:" in low and "answer:" in low:
        found.add("format")
    return found


def best_policy(
    llm: SimulatedLLM, strategies: Mapping[str, str], categories: Sequence[str]
) -> dict[str, tuple[str, float]]:
    """Per category, the strategy the simulator answers right most often, and that probability:
    the per-category oracle a learner's greedy policy should converge to (ties: the first)."""
    out: dict[str, tuple[str, float]] = {}
    for cat in categories:
        rated = [
            (llm.probability(cat, cues_of(t.replace("{question}", ""))), n) for n, t in strategies.items()
        ]
        p, name = max(rated, key=lambda r: r[0])
        out[cat] = (name, p)
    return out


class SimulatedLLM:
    """The default backend: offline, seeded, deterministic. See the module docstring."""

    def __init__(
        self,
        questions: Sequence[Question],
        *,
        profile: Mapping[str, Mapping[str, float]] = DEFAULT_PROFILE,
        seed: int = 0,
        partial: float = 0.3,
        name: str = "sim",
    ) -> None:
        self.name = name
        self._profile = profile
        self._seed = seed
        self._partial = partial
        self._index = {normalize(q.question): q for q in questions}
        self._by_cat = by_category(questions)
        self._asked: Counter[str] = Counter()
        self.calls = 0

    def probability(self, category: str, cues: set[str]) -> float:
        row = self._profile.get(category, DEFAULT_FALLBACK)
        keys = cues & set(row) or {"direct"}
        return max(row.get(k, row.get("direct", 0.5)) for k in keys)

    def find(self, prompt: str) -> Question | None:
        for line in prompt.splitlines():
            text = line.strip()
            for prefix in ("question:", "q:", "you are an expert."):
                if text.lower().startswith(prefix):
                    text = text[len(prefix) :].strip()
            hit = self._index.get(normalize(text))
            if hit is not None:
                return hit
        norm = normalize(prompt)
        return next((q for k, q in self._index.items() if k and k in norm), None)

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion:
        self.calls += 1
        key = prompt.strip()
        nth = self._asked[key]
        self._asked[key] += 1
        digest = hashlib.blake2b(f"{self._seed}\x00{nth}\x00{key}".encode(), digest_size=8).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        start = time.perf_counter()
        q = self.find(prompt)
        if q is None:
            text = "I am not sure."
        else:
            cues = cues_of(prompt)
            u = rng.random()
            p = self.probability(q.category, cues)
            if u < p:
                text = self._right(q.answer, cues)
            elif u < p + (1 - p) * self._partial and self._partly(q) is not None:
                text = self._partly(q) or ""
            else:
                text = self._wrong(q, rng)
        return Completion(text=text, model=self.name, latency_s=time.perf_counter() - start)

    @staticmethod
    def _right(answer: str, cues: set[str]) -> str:
        """The same phrasing for every strategy: a cue changes how often it is right, not how it
        says so (a sentence would score 0.8 and tilt a score-based reward against its cue)."""
        return answer

    @staticmethod
    def _partly(q: Question) -> str | None:
        """A partly right answer (scores 0.5), if the answer has one: one of its words."""
        for word in q.answer.split():
            if score_answer(word, q.answer, q.aliases) == 0.5:
                return word
        return None

    def _wrong(self, q: Question, rng: random.Random) -> str:
        pool = self._by_cat.get(q.category, [])
        for _ in range(8):
            other = rng.choice(pool) if pool else q
            if score_answer(other.answer, q.answer, q.aliases) == 0.0:
                return other.answer
        return "I do not know."

    async def aclose(self) -> None:
        return None
