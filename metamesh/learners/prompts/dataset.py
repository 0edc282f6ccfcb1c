"""Questions: the built-in trivia set and users' own (JSONL or CSV), and per-node streams."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from metamesh.errors import ConfigError

__all__ = [
    "BUILTIN",
    "CATEGORIES",
    "Question",
    "builtin_dataset",
    "builtin_trivia",
    "by_category",
    "held_out_split",
    "load_dataset",
    "question_stream",
    "questions_for",
]

#: The six categories of seed 000, which are also the domains of the prompt learner.
CATEGORIES = ("geography", "math", "science", "literature", "history", "art")


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    answer: str
    category: str
    aliases: tuple[str, ...] = ()


def _from_record(rec: Mapping[str, Any], where: str, index: int) -> Question:
    try:
        question, answer, category = (str(rec[k]).strip() for k in ("question", "answer", "category"))
    except KeyError as exc:
        raise ConfigError(f"{where}: record {index} lacks {exc.args[0]!r}") from exc
    if not question or not answer or not category:
        raise ConfigError(f"{where}: record {index} has an empty question, answer or category")
    raw_aliases = rec.get("aliases") or ()
    aliases = (
        tuple(a.strip() for a in raw_aliases.split("|"))
        if isinstance(raw_aliases, str)
        else tuple(str(a) for a in raw_aliases)
    )
    return Question(
        str(rec.get("id") or f"q{index}"), question, answer, category.lower(), tuple(a for a in aliases if a)
    )


def _parse_jsonl(lines: Iterator[str], where: str) -> list[Question]:
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: line {i} is not JSON: {exc.msg}") from exc
        if not isinstance(rec, dict):
            raise ConfigError(f"{where}: line {i} is not a JSON object")
        out.append(_from_record(rec, where, i))
    return out


#: Question sets shipped with metamesh, by name (``--dataset NAME``).
BUILTIN = {
    "trivia": "614 questions in six categories (seed 000)",
    "commonsense": "60 multiple-choice everyday questions, options in the question (seed 003)",
    "sentiment": "60 sentences to label positive, negative or neutral (seed 003)",
}


def builtin_dataset(name: str) -> list[Question]:
    """A question set shipped with metamesh (``BUILTIN``)."""
    if name not in BUILTIN:
        raise ConfigError(f"no built-in dataset {name!r}; choose from {', '.join(BUILTIN)} or give a file")
    text = resources.files("metamesh.learners").joinpath(f"data/{name}.jsonl").read_text(encoding="utf-8")
    return _parse_jsonl(iter(text.splitlines()), f"builtin {name}")


def builtin_trivia() -> list[Question]:
    """The trivia set shipped with metamesh: 614 questions in six categories."""
    return builtin_dataset("trivia")


def questions_for(spec: str) -> list[Question]:
    """``--dataset``: a built-in set by name, a file, or several joined with ``+``
    (``trivia+sentiment``); empty means the trivia set."""
    if not spec:
        return builtin_trivia()
    out: list[Question] = []
    for part in spec.split("+"):
        out += builtin_dataset(part) if part in BUILTIN else load_dataset(Path(part))
    return out


def load_dataset(path: Path) -> list[Question]:
    """A user's questions: JSONL objects or CSV rows with question, answer, category
    (optional ``aliases`` separated by ``|`` and ``id``)."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            if path.suffix.lower() == ".csv":
                rows = list(csv.DictReader(fh))
                questions = [_from_record(r, str(path), i) for i, r in enumerate(rows, 2)]
            else:
                questions = _parse_jsonl(iter(fh), str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read dataset {path}: {exc.strerror or exc}") from exc
    if not questions:
        raise ConfigError(f"{path}: no questions")
    return questions


def by_category(questions: Sequence[Question]) -> dict[str, list[Question]]:
    out: dict[str, list[Question]] = {}
    for q in questions:
        out.setdefault(q.category, []).append(q)
    return out


def question_stream(
    questions: Sequence[Question], *, weights: Mapping[str, float], seed: int
) -> Iterator[Question]:
    """An endless, deterministic stream drawing categories by ``weights`` (non-IID per node)."""
    pools = by_category(questions)
    cats = [c for c in weights if c in pools and weights[c] > 0]
    if not cats:
        raise ConfigError("no question matches the stream's categories")
    rng = random.Random(seed)
    w = [weights[c] for c in cats]
    while True:
        yield rng.choice(pools[rng.choices(cats, w)[0]])


def held_out_split(questions: Sequence[Question], eval_size: int) -> list[Question]:
    """The fixed held-out questions of a dataset, the same on every node and in every run: up to
    ``eval_size`` per category (a third of it at most), picked with the seed the nodes use."""
    pools = by_category(questions)
    picker = random.Random(12345)
    return [q for c in sorted(pools) for q in picker.sample(pools[c], min(eval_size, len(pools[c]) // 3))]
