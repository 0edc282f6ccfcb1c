"""The CLI's logging: third-party chatter (httpx's line per request) stays out unless --log-level debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from metamesh.cli.logs import NOISY, setup_logging
from metamesh.llm.http import OllamaLLM
from tests.prompts.test_llm_http import OLLAMA_OK, FakeServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _library_levels_restored() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in NOISY}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    s.thread.start()
    try:
        yield s
    finally:
        s.close()


async def _one_request(server: FakeServer) -> None:
    server.script = [(200, OLLAMA_OK)]
    llm = OllamaLLM("tiny", base_url=server.url)
    try:
        await llm.generate("Capital of France?")
    finally:
        await llm.aclose()
    assert len(server.requests) == 1


@pytest.mark.parametrize("level", ["info", "warning"])
async def test_a_real_request_logs_nothing_below_debug(
    server: FakeServer, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    setup_logging(level)
    await _one_request(server)
    logging.getLogger("metamesh.node.runtime").info("our own line")
    err = capsys.readouterr().err
    assert "HTTP Request" not in err and "/api/generate" not in err, err
    assert ("our own line" in err) == (level == "info")


async def test_debug_shows_the_library_line_and_ours(
    server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("debug")
    await _one_request(server)
    err = capsys.readouterr().err
    assert "httpx: HTTP Request: POST" in err, err
    assert "metamesh.llm.http: POST" in err and "/api/generate: 200" in err, err


def test_library_warnings_still_pass_at_the_default_level(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", json_logs=True)
    logging.getLogger("some.library").info("routine")
    logging.getLogger("some.library").warning("something is wrong")
    logging.getLogger("httpx").error("broken")
    err = capsys.readouterr().err
    assert "routine" not in err
    assert '"msg": "something is wrong"' in err and '"msg": "broken"' in err
