"""Scoring an LLM's answer against the truth, as seed 000 does: 1.0 / 0.8 / 0.5 / 0.0.

Both sides are normalised first: lower case, punctuation and accents removed,
the articles a/an/the dropped, number words turned into digits ("twenty-one"
→ "21"). Then:

- 1.0 exact: the response equals the answer or an alias;
- 0.8 contains: the answer or an alias appears in the response as whole words;
- 0.5 partial: at least half of the answer's words appear in the response
  (a surname alone, "Everest" for "Mount Everest"), for multi-word answers;
- 0.0 otherwise. An answer is correct at 0.8 or more.

One objective: the learner is judged by its accuracy (the share of answers
that are correct), so its reward is that, on seed 000's scale: ``reward =
10 * correct - 1`` (9 or -1), and a Q-value ``q`` reads as accuracy
``(q + 1) / 10``. Seed 000's ``score * 10 - 1`` (:func:`shaped_reward`) is
kept for comparison only: it prefers a strategy whose answers are brief
(1.0) over one that is more often right in a sentence (0.8), and counts a
half-right answer (0.5) as worth more than a wrong one, so the policy that
maximises it need not be the most accurate one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["is_correct", "normalize", "reward", "score_answer", "shaped_reward"]

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("-", " ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 300,000 -> 300000
    return re.sub(r"[^\w\s]", " ", text)


def _words_to_number(words: list[str]) -> int:
    total, current = 0, 0
    for w in words:
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[w]
            current = 0
    return total + current


def normalize(text: str) -> str:
    """The comparable form of an answer: see the module docstring."""
    tokens = _fold(text).split()
    out: list[str] = []
    run: list[str] = []
    for tok in [*tokens, ""]:
        if tok in _NUMBER_WORDS or (tok == "and" and run):
            run.append(tok)
            continue
        if run:
            trailing_and = run[-1] == "and"
            words = [w for w in run if w != "and"]
            out.append(str(_words_to_number(words)))
            if trailing_and:
                out.append("and")
            run = []
        if tok and tok not in _ARTICLES:
            out.append(tok)
    return " ".join(out)


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def score_answer(response: str, answer: str, aliases: Iterable[str] = ()) -> float:
    resp = normalize(response).split()
    truths = [normalize(t).split() for t in (answer, *aliases)]
    truths = [t for t in truths if t]
    if any(resp == t for t in truths):
        return 1.0
    if any(_contains(resp, t) for t in truths):
        return 0.8
    words = set(resp)
    for t in truths:
        if len(t) > 1 and sum(w in words for w in t) * 2 >= len(t):
            return 0.5
    return 0.0


def reward(score: float) -> float:
    """What the prompt learner maximises: accuracy on seed 000's scale (9 if correct, else -1)."""
    return 10.0 * is_correct(score) - 1.0


def shaped_reward(score: float) -> float:
    """Seed 000's reward, ``score * 10 - 1``: not what the learner is judged by (module docstring)."""
    return score * 10.0 - 1.0


def is_correct(score: float) -> bool:
    return score >= 0.8
