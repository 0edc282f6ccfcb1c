"""A prompt template as parts: framing, reasoning cue, brevity, answer format, examples.

Evolution edits parts, not characters: a deterministic transform adds or
removes one, and a template an LLM rewrote is parsed back into parts, so
every candidate renders canonically and two equal prompts compare equal.
Templates keep the ``{question}`` slot of the prompt learner's strategies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from metamesh.llm.simulated import cues_of

__all__ = ["PARTS", "STATIC_PROMPT", "Genome"]

#: Parts a template can have, as the phrases that signal them to a reader (and to the
#: simulated LLM, which reads the same cues as ``metamesh.llm.simulated.CUES``).
PARTS = ("expert", "reasoning", "brevity", "format", "examples")
MAX_EXAMPLES = 3

#: The seed's static baseline: an instruction and the question, nothing learned.
STATIC_PROMPT = "Answer the following question.\n{question}\nAnswer:"


@dataclass(frozen=True, slots=True)
class Genome:
    """Which parts a prompt has, and its worked examples (question, answer)."""

    parts: frozenset[str] = frozenset()
    examples: tuple[tuple[str, str], ...] = ()

    def with_part(self, part: str) -> Genome:
        return replace(self, parts=self.parts | {part})

    def without_part(self, part: str) -> Genome:
        if part == "examples":
            return replace(self, parts=self.parts - {part}, examples=())
        return replace(self, parts=self.parts - {part})

    def with_examples(self, examples: Iterable[tuple[str, str]]) -> Genome:
        chosen = tuple(examples)[:MAX_EXAMPLES]
        return replace(self, parts=self.parts | {"examples"}, examples=chosen) if chosen else self

    def render(self) -> str:
        """The template: parts in a fixed order around the ``{question}`` slot."""
        lines = []
        if "expert" in self.parts:
            lines.append("You are an expert.")
        lines.append("Answer the following question.")
        if "examples" in self.parts and self.examples:
            lines.append("Examples:")
            lines += [f"- {q} => {a}" for q, a in self.examples]
        lines.append("Question: {question}" if "format" in self.parts else "{question}")
        if "reasoning" in self.parts:
            lines.append("Let's think step by step.")
        if "brevity" in self.parts:
            lines.append("Give only the answer, nothing else.")
        if "format" in self.parts:
            lines.append("Provide a brief, accurate answer.")
        lines.append("Answer:")
        return "\n".join(lines)

    @classmethod
    def parse(cls, template: str) -> Genome:
        """The parts a template (ours, a peer's or an LLM's rewrite) signals."""
        examples = []
        for line in template.splitlines():
            text = line.strip()
            if text.startswith("- ") and " => " in text:
                q, _, a = text[2:].partition(" => ")
                examples.append((q.strip(), a.strip()))
        parts = {p for p in cues_of(template.replace("{question}", "")) if p in PARTS}
        if examples:
            parts.add("examples")
        else:
            parts.discard("examples")
        return cls(frozenset(parts), tuple(examples[:MAX_EXAMPLES]))

    def describe(self) -> str:
        return "+".join(sorted(self.parts)) or "plain"
