"""The interface every LLM backend implements: a prompt in, text out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["LLM", "Completion", "GenerateOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateOptions:
    temperature: float = 0.2
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    text: str
    model: str
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class LLM(Protocol):
    """An LLM. ``generate`` may take seconds on a real server; it raises only ``LLMError``."""

    name: str

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion: ...

    async def aclose(self) -> None: ...
