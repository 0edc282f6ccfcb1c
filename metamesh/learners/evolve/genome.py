"""A prompt template as parts — framing, reasoning cue, brevity, answer format, examples — or as
an LLM's own words.

Evolution's own edits work on parts: a deterministic transform adds or
removes one, and a canonical template renders them in a fixed order, so two
equal prompts compare equal. A rewrite by an LLM is kept as it was written
(``text``): its parts are what its wording signals, and an edit of it adds or
removes lines of that text rather than throwing the wording away. Templates
keep the ``{question}`` slot of the prompt learner's strategies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from metamesh.llm.simulated import CUES, cues_of

__all__ = ["PARTS", "PHRASES", "STATIC_PROMPT", "Genome"]

#: Parts a template can have, as the phrases that signal them to a reader (and to the
#: simulated LLM, which reads the same cues as ``metamesh.llm.simulated.CUES``).
PARTS = ("expert", "reasoning", "brevity", "format", "examples")
#: The line that adds a part (examples aside) to a template.
PHRASES = {
    "expert": "You are an expert.",
    "reasoning": "Let's think step by step.",
    "brevity": "Give only the answer, nothing else.",
    "format": "Provide a brief, accurate answer.",
}
MAX_EXAMPLES = 3

#: The seed's static baseline: an instruction and the question, nothing learned.
STATIC_PROMPT = "Answer the following question.\n{question}\nAnswer:"


def _example_line(text: str) -> bool:
    return text.startswith("- ") and " => " in text


@dataclass(frozen=True, slots=True)
class Genome:
    """Which parts a prompt has, its worked examples (question, answer), and a rewrite's own words."""

    parts: frozenset[str] = frozenset()
    examples: tuple[tuple[str, str], ...] = ()
    text: str = ""
    """A template as an LLM wrote it, kept verbatim ("": the canonical render of ``parts``)."""

    def with_part(self, part: str) -> Genome:
        if not self.text or part == "examples" or part in self.parts:
            return replace(self, parts=self.parts | {part})
        lines = self.text.splitlines()
        at = len(lines) - 1 if lines and lines[-1].strip().lower().endswith("answer:") else len(lines)
        if part == "expert":
            at = 0
        return Genome.parse("\n".join([*lines[:at], PHRASES[part], *lines[at:]]))

    def without_part(self, part: str) -> Genome:
        canonical = replace(self, parts=self.parts - {part}, text="")
        if part == "examples":
            canonical = replace(canonical, examples=())
        if not self.text:
            return canonical
        phrases = CUES.get(part, ())
        kept = [
            line
            for line in self.text.splitlines()
            if not (part == "examples" and (_example_line(line.strip()) or line.strip() == "Examples:"))
            and not any(p in line.lower() for p in phrases)
        ]
        edited = Genome.parse("\n".join(kept))
        return edited if part not in edited.parts and "{question}" in edited.render() else canonical

    def with_examples(self, examples: Iterable[tuple[str, str]]) -> Genome:
        chosen = tuple(examples)[:MAX_EXAMPLES]
        if not chosen:
            return self
        if not self.text:
            return replace(self, parts=self.parts | {"examples"}, examples=chosen)
        lines = self.without_part("examples").render().splitlines()
        at = next((i for i, line in enumerate(lines) if "{question}" in line), len(lines))
        block = ["Examples:", *(f"- {q} => {a}" for q, a in chosen)]
        return Genome.parse("\n".join([*lines[:at], *block, *lines[at:]]))

    def render(self) -> str:
        """The template: a rewrite's own text, else the parts in a fixed order around ``{question}``."""
        if self.text:
            return self.text
        lines = []
        if "expert" in self.parts:
            lines.append(PHRASES["expert"])
        lines.append("Answer the following question.")
        if "examples" in self.parts and self.examples:
            lines.append("Examples:")
            lines += [f"- {q} => {a}" for q, a in self.examples]
        lines.append("Question: {question}" if "format" in self.parts else "{question}")
        for part in ("reasoning", "brevity", "format"):
            if part in self.parts:
                lines.append(PHRASES[part])
        lines.append("Answer:")
        return "\n".join(lines)

    @classmethod
    def parse(cls, template: str) -> Genome:
        """The parts a template (ours, a peer's or an LLM's rewrite) signals; its own words are kept
        unless it is the canonical render of those parts."""
        examples = []
        for line in template.splitlines():
            text = line.strip()
            if _example_line(text):
                q, _, a = text[2:].partition(" => ")
                examples.append((q.strip(), a.strip()))
        parts = {p for p in cues_of(template.replace("{question}", "")) if p in PARTS}
        if examples:
            parts.add("examples")
        else:
            parts.discard("examples")
        genome = cls(frozenset(parts), tuple(examples[:MAX_EXAMPLES]))
        return genome if genome.render() == template else replace(genome, text=template)

    @property
    def free(self) -> bool:
        """Written in an LLM's own words, not the canonical render of its parts."""
        return bool(self.text)

    def describe(self) -> str:
        return ("+".join(sorted(self.parts)) or "plain") + (" (own words)" if self.text else "")
