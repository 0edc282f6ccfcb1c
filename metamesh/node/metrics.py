"""Prometheus text exposition of a node's status, on an optional HTTP port.

``render`` is pure (a status report in, text out) and ``family`` writes one metric family: the
one renderer of Prometheus text in metamesh (the gateway's ``GET /metrics`` serves ``render``'s
text followed by its own families, written with ``family``). ``MetricsServer`` is a tiny asyncio
HTTP server that answers ``GET /metrics`` and nothing else, so a node without a gateway
(``--metrics-port``) needs no web framework to be scraped and imports none.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from metamesh.errors import TransportError

__all__ = ["MetricsServer", "family", "render"]

log = logging.getLogger(__name__)


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def family(
    out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[dict[str, Any], float]]
) -> None:
    """Append one family (``# HELP``, ``# TYPE``, a line per sample) of Prometheus text to ``out``."""
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{text}}} {float(value)!r}" if text else f"{name} {float(value)!r}")


def render(report: Mapping[str, Any]) -> str:
    """The status report of one node as Prometheus text format 0.0.4."""
    counters = report.get("counters", {})
    out: list[str] = []
    messages = [
        ({"direction": d, "kind": k}, v)
        for d in ("sent", "received", "relayed")
        for k, v in sorted(counters.get(d, {}).items())
    ]
    family(out, "metamesh_messages_total", "counter", "Messages by direction and kind.", messages)
    family(
        out,
        "metamesh_dropped_total",
        "counter",
        "Messages dropped, by reason.",
        [({"reason": k}, v) for k, v in sorted(counters.get("dropped", {}).items())],
    )
    family(
        out,
        "metamesh_rejected_total",
        "counter",
        "Messages rejected as invalid, by reason.",
        [({"reason": k}, v) for k, v in sorted(counters.get("rejected", {}).items())],
    )
    family(
        out,
        "metamesh_merge_failed_total",
        "counter",
        "Messages the learner raised on while merging them, by kind.",
        [({"kind": k}, v) for k, v in sorted(counters.get("merge_failed", {}).items())],
    )
    family(
        out,
        "metamesh_bytes_total",
        "counter",
        "Bytes on the wire, by direction.",
        [
            ({"direction": "sent"}, counters.get("bytes_sent", 0)),
            ({"direction": "received"}, counters.get("bytes_received", 0)),
        ],
    )
    states: dict[str, int] = {"alive": 0, "suspect": 0, "dead": 0}
    for peer in report.get("peers", {}).values():
        states[peer.get("state", "unknown")] = states.get(peer.get("state", "unknown"), 0) + 1
    family(
        out,
        "metamesh_peers",
        "gauge",
        "Known peers, by membership state.",
        [({"state": k}, v) for k, v in sorted(states.items())],
    )
    family(
        out,
        "metamesh_peers_quarantined",
        "gauge",
        "Peers whose messages are neither merged nor relayed, for misbehaviour or drift.",
        [({}, len(report.get("quarantined", [])))],
    )
    family(
        out,
        "metamesh_domain_member",
        "gauge",
        "1 for each domain this node is in.",
        [({"domain": d}, 1) for d in report.get("domains", [])],
    )
    learner = {k: v for k, v in report.get("learner", {}).items() if isinstance(v, (int, float))}
    family(
        out,
        "metamesh_learner",
        "gauge",
        "The learner's own figures (episodes, accuracy, ...).",
        [({"metric": k}, v) for k, v in sorted(learner.items())],
    )
    family(
        out,
        "metamesh_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        [({}, report.get("uptime", 0))],
    )
    family(
        out,
        "metamesh_sequence",
        "counter",
        "The next sequence number this node will use.",
        [({}, report.get("seq", 0))],
    )
    return "\n".join(out) + "\n"


class MetricsServer:
    """Serves ``render(status())`` at ``GET /metrics``; every other request gets 404."""

    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port) and return the port.

        Raises :class:`TransportError` when the port is busy or the address cannot be bound.
        """
        try:
            self._server = await asyncio.start_server(self._handle, host, port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise TransportError(f"cannot serve metrics on {host}:{port} (--metrics-port): {reason}") from exc
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            line = request.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                body = render(self._status()).encode()
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            else:
                body = b"not found: scrape /metrics\n"
                head = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            log.debug("metrics request dropped: %r", exc)
        finally:
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
