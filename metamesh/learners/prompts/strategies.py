"""Prompt strategies: templates with a ``{question}`` slot (seed 000's five by default)."""

from __future__ import annotations

from collections.abc import Mapping

from metamesh.errors import ConfigError

__all__ = ["DEFAULT_STRATEGIES", "render", "validate_strategies"]

DEFAULT_STRATEGIES: Mapping[str, str] = {
    "direct": "{question}\nAnswer:",
    "think": "{question}\nLet's think step by step and then provide the answer:",
    "concise": "{question}\nGive only the answer, nothing else:",
    "expert": "You are an expert. {question}\nAnswer:",
    "format": "Question: {question}\nProvide a brief, accurate answer:\nAnswer:",
}


def render(template: str, question: str) -> str:
    return template.replace("{question}", question)


def validate_strategies(strategies: Mapping[str, str]) -> Mapping[str, str]:
    """Refuse templates a user cannot have meant: no slot, or an empty name."""
    if not strategies:
        raise ConfigError("at least one prompt strategy is needed")
    for name, template in strategies.items():
        if not name or "{question}" not in template:
            raise ConfigError(f"strategy {name!r} must be named and contain {{question}}")
    return strategies
