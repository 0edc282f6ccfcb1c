"""Whether the real model can run here; the session's server is ``local_server`` (tests/conftest.py)."""

from __future__ import annotations

import pytest

from metamesh.errors import LLMNotInstalled
from metamesh.llm.local import bundled_model, require_installed


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
