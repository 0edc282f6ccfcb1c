"""LLM spec strings: ``sim``, ``sim:PROFILE.json``, ``local``, ``local:FILE.gguf``, ``ollama:MODEL``,
``openai:URL:MODEL``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from metamesh.errors import ConfigError
from metamesh.learners.prompts.dataset import Question
from metamesh.llm.base import LLM

__all__ = ["parse_llm_spec"]

_OPENAI = re.compile(r"openai:(?P<url>https?://[^/\s:]+(?::\d+)?(?:/[^:\s]*)?):(?P<model>.+)\Z")


def parse_llm_spec(spec: str, *, questions: Sequence[Question], seed: int = 0) -> LLM:
    from metamesh.llm.simulated import DEFAULT_PROFILE, SimulatedLLM, load_profile

    if spec == "sim":
        return SimulatedLLM(questions, profile=DEFAULT_PROFILE, seed=seed)
    if spec.startswith("sim:"):
        return SimulatedLLM(questions, profile=load_profile(Path(spec[4:])), seed=seed)
    if spec == "local" or spec.startswith("local:"):
        from metamesh.llm.local import LocalLLM, LocalModelServer

        server = LocalModelServer(model=Path(spec[6:]) if spec[6:] else None)
        server.preflight()  # a missing install or model file fails now, not at the first question
        return LocalLLM(server)
    if spec.startswith("ollama:") and len(spec) > len("ollama:"):
        from metamesh.llm.http import OllamaLLM

        return OllamaLLM(spec[len("ollama:") :])
    match = _OPENAI.match(spec)
    if match:
        from metamesh.llm.http import OpenAICompatibleLLM

        return OpenAICompatibleLLM(match["url"], match["model"])
    raise ConfigError(
        f"unknown LLM {spec!r}: use sim, sim:PROFILE.json, local, local:FILE.gguf, ollama:MODEL"
        " or openai:URL:MODEL"
    )
