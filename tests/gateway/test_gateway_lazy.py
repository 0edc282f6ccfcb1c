"""A node without a gateway never imports it (nor Starlette, nor uvicorn); the CLI teaches it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.cli import exitcodes
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


def test_node_gateway_serves_the_prompts_learner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["node", "--home", str(tmp_path / "n"), "--learner", "experts", "--gateway", "127.0.0.1:0",
                 "--backend", "openai:http://127.0.0.1:9/v1:m"])  # fmt: skip
    assert code == exitcodes.CONFIG
    assert "--gateway serves the prompts learner" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["node", "--help"])
    assert "--gateway HOST:PORT" in capsys.readouterr().out
