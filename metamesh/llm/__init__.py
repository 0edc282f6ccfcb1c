"""LLM backends behind one async interface.

- ``base``: the interface (``LLM``), options and completions
- ``simulated``: the offline, deterministic default whose accuracy depends on the prompt
- ``http``: Ollama and OpenAI-compatible servers through httpx
- ``local``: llama.cpp's server on the bundled SmolLM2, started and stopped by this process
- ``bundled``: where that model file is, and the one line to print when it is not installed
- ``spec``: ``sim``, ``local``, ``ollama:MODEL``, ``openai:URL:MODEL`` strings to backends
"""

from __future__ import annotations

from metamesh.llm.base import LLM, Completion, GenerateOptions

__all__ = ["LLM", "Completion", "GenerateOptions"]
