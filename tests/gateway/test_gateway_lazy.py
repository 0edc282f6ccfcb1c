"""A node without a gateway never imports it (nor Starlette, nor uvicorn); the CLI teaches it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metamesh.cli.main import main

pytestmark = pytest.mark.timeout(60)


def test_a_node_without_a_gateway_imports_none_of_it() -> None:
    code = (
        "import sys, metamesh, metamesh.node.run, metamesh.learners.builtin, metamesh.cli.main\n"
        "from metamesh.cli.main import build_parser\nbuild_parser()\n"
        "bad = [m for m in ('metamesh.gateway', 'starlette', 'uvicorn') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr


def test_gateway_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["gateway", "--help"])
    text = capsys.readouterr().out
    for needle in ("/v1/feedback", "--backend", "openai:URL:MODEL", "--keys-file", "curl", "metamesh"):
        assert needle in text
