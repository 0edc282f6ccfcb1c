"""One gateway on a node: its settings, its parts, and uvicorn serving it on the node's event loop.

:func:`build_gateway` makes the node's learner (a :class:`GatewayLearner` over the prompt learner,
with a classifier trained on the learner's questions) and the :class:`Gateway`; :func:`serve`
runs a node with it until SIGINT/SIGTERM. :meth:`Gateway.start` binds the socket itself (so a
busy port is one clear :class:`~metamesh.errors.TransportError`, not uvicorn's exit) and returns
once uvicorn accepts connections; uvicorn's own signal handling is off, the node's is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from metamesh.errors import ConfigError, TransportError
from metamesh.gateway.app import build_app
from metamesh.gateway.backends import Backend, parse_backend
from metamesh.gateway.errors import GatewayMetrics
from metamesh.gateway.journal import JOURNAL_NAME
from metamesh.gateway.learner import GatewayLearner
from metamesh.gateway.requests import Limits
from metamesh.gateway.routing import RouteChoice, Router
from metamesh.gateway.security import KeyRing, RateLimiter, is_loopback, load_keys_file
from metamesh.learners.prompts.decisions import Classifier, Decider, DecisionStore
from metamesh.node.config import NodeConfig
from metamesh.node.metrics import render
from metamesh.node.run import run_node
from metamesh.node.runtime import Node

__all__ = ["Gateway", "GatewayConfig", "build_gateway", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """How a gateway listens, whom it admits, what it calls and how boldly it explores."""

    host: str = "127.0.0.1"
    port: int = 8080
    backends: tuple[str, ...] = ()
    keys_file: Path | None = None
    exploration: float = 0.05
    """Share of requests that try a strategy other than the best-rated one."""
    rate: float = 50.0
    """Requests a second per API key, on average (0: no limit)."""
    burst: float = 100.0
    timeout: float = 60.0
    """Seconds a backend may take to answer."""
    limits: Limits = field(default_factory=Limits)
    decision_ttl: float = 86_400.0
    max_decisions: int = 100_000
    train: bool = False
    """Also run the prompt learner's own episodes on its questions (``--llm``)."""
    costs: Mapping[str, float] = field(default_factory=dict)
    """Cost of one request per backend name (default 1), for routing within a budget."""
    budget: float | None = None
    """Default cost budget of a request to the virtual model (None: any backend)."""


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handlers: the node's handlers stop the node, and the node the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Gateway:
    """The HTTP face of one node (see the module docstring)."""

    def __init__(self, config: GatewayConfig, learner: GatewayLearner, backends: Sequence[Backend]) -> None:
        if not backends:
            raise ConfigError(
                "a gateway needs at least one --backend (openai:URL:MODEL, ollama:MODEL, local)"
            )
        keys = load_keys_file(config.keys_file) if config.keys_file is not None else None
        if keys is None and not is_loopback(config.host):
            raise ConfigError(
                f"a gateway on {config.host} (beyond loopback) needs --keys-file: anyone on the network "
                "could use its models and rate its decisions"
            )
        self.config = config
        self.learner = learner
        self.decider = learner.decider
        self.router = learner.router
        self.backends: dict[str, Backend] = {}
        for b in backends:
            if b.name in self.backends or b.name == "metamesh":
                raise ConfigError(f"two backends are named {b.name!r}; each model name must be unique")
            self.backends[b.name] = b
        self.keys = KeyRing(keys)
        self.limiter = RateLimiter(config.rate, config.burst)
        self.limits = config.limits
        self.timeout = config.timeout
        self.metrics = GatewayMetrics()
        self.started = time.time()
        self.node: Node | None = None
        self.port = 0
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def node_id(self) -> str:
        return self.node.id if self.node is not None else ""

    def default_backend(self) -> Backend:
        return next(iter(self.backends.values()))

    def route(self, category: str, budget: float | None) -> RouteChoice:
        """The backend for a request to the virtual model: the router's choice, else the first backend."""
        if self.router is not None:
            return self.router.choose(category, budget)
        b = self.default_backend()
        return RouteChoice(b.name, False, budget, self.config.costs.get(b.name, 1.0))

    def render_metrics(self) -> str:
        own = render(self.node.status()) if self.node is not None else ""
        return own + self.metrics.render()

    async def start(self, node: Node) -> int:
        """Start the backends, bind, serve on this loop; returns the port once connections are accepted."""
        self.node = node
        replayed = self.learner.recover(Path(node.config.home) / JOURNAL_NAME)
        journal = self.learner.journal
        if journal is not None:
            self.metrics.fsyncs = lambda: journal.fsyncs
        if replayed:
            log.info("gateway replayed %d ratings from its feedback journal", replayed)
        for b in self.backends.values():
            await b.start()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot serve the gateway on {self.config.host}:{self.config.port}: "
                                 f"{exc.strerror or exc}") from exc  # fmt: skip
        sock.listen(2048)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        uv = uvicorn.Config(build_app(self), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2, limit_concurrency=4096)  # fmt: skip
        self._server = server = _InLoopServer(uv)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="gateway")
        while not server.started:
            if self._task.done():
                sock.close()
                self._task.result()
                raise TransportError("the gateway's server stopped while starting")
            await asyncio.sleep(0.005)
        self._sock = sock
        log.info(
            "gateway on http://%s:%d/v1 (backends: %s)", self.config.host, self.port, ", ".join(self.backends)
        )
        return self.port

    async def stop(self) -> None:
        """Stop serving (bounded), then close the backends."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5.0)
        if self._sock is not None:
            self._sock.close()
        for b in self.backends.values():
            with contextlib.suppress(Exception):
                await b.aclose()
        if self.learner.journal is not None:
            await self.learner.journal.aclose()


def build_gateway(
    node_config: NodeConfig, config: GatewayConfig, *, backends: Sequence[Backend] | None = None
) -> Gateway:
    """The learner and gateway for a node: the prompt learner on the node's dataset, its classifier
    trained on the same questions, the backends parsed from ``config.backends`` unless given."""
    from metamesh.learners.prompts.dataset import by_category, question_stream, questions_for
    from metamesh.learners.prompts.learner import PromptLearner, PromptLearnerConfig
    from metamesh.llm.spec import parse_llm_spec

    questions = questions_for(node_config.dataset)
    categories = sorted(by_category(questions))
    llm = parse_llm_spec(node_config.llm, questions=questions, seed=node_config.random_seed)
    prompts = PromptLearner(
        llm,
        question_stream(questions, weights=dict.fromkeys(categories, 1.0), seed=node_config.random_seed),
        config=PromptLearnerConfig(seed=node_config.random_seed, federated=node_config.arm == "federated"),
        categories=categories,
    )
    store = DecisionStore(capacity=config.max_decisions, ttl=config.decision_ttl)
    classifier = Classifier((q.question, q.category) for q in questions)
    decider = Decider(prompts, store=store, classifier=classifier, epsilon=config.exploration,
                      seed=node_config.random_seed)  # fmt: skip
    made = list(backends) if backends is not None else [parse_backend(s) for s in config.backends]
    unknown = sorted(set(config.costs) - {b.name for b in made})
    if unknown:
        raise ConfigError(f"--backend-cost names no backend: {', '.join(unknown)}")
    router = None
    if len(made) > 1:
        router = Router([b.name for b in made], config.costs, budget=config.budget,
                        epsilon=config.exploration, seed=node_config.random_seed)  # fmt: skip
    learner = GatewayLearner(decider, train=config.train, router=router)
    return Gateway(config, learner, made)


async def serve(
    node_config: NodeConfig,
    config: GatewayConfig,
    *,
    ready: Callable[[Node, Gateway], object] | None = None,
    handle_signals: bool = True,
) -> None:
    """Run a node with a gateway until SIGINT/SIGTERM or ``node.request_stop()``; stops both."""
    gateway = build_gateway(node_config, config)

    def started(node: Node) -> None:
        if ready is not None:
            ready(node, gateway)

    await run_node(node_config, gateway.learner, ready=started, handle_signals=handle_signals,
                   services=[gateway])  # fmt: skip
