"""One real model per session: llama.cpp's server on the bundled SmolLM2, or a skip saying what to install."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metamesh.errors import LLMNotInstalled
from metamesh.llm.local import LocalModelServer, bundled_model, require_installed


def _missing() -> str:
    try:
        require_installed()
        bundled_model()
    except LLMNotInstalled as exc:
        return str(exc)
    return ""


#: Why the real model cannot run here, or "" when it can.
MISSING = _missing()
needs_model = pytest.mark.skipif(bool(MISSING), reason=f"the llm-local extra is not installed: {MISSING}")


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalModelServer]:
    """The session's managed server, started once and stopped by PID at the end."""
    if MISSING:
        pytest.skip(f"the llm-local extra is not installed: {MISSING}")
    with LocalModelServer() as server:
        yield server
