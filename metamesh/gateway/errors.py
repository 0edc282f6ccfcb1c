"""OpenAI-style error objects, and the gateway's counters in Prometheus text.

Every refusal is an :class:`ApiError`: an HTTP status, an OpenAI ``type`` and ``code``, the
``param`` (field) at fault and one line for a person. :meth:`ApiError.body` is what the
``openai`` client parses into its exception. :class:`GatewayMetrics` counts requests by
endpoint and status, errors by code, decisions, ratings and backend calls; :meth:`render`
appends them to the node's own exposition (``metamesh.node.metrics.render``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from metamesh.node.metrics import family

__all__ = ["ApiError", "GatewayMetrics"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "api_error",
    504: "timeout_error",
}


class ApiError(Exception):
    """A request the gateway refuses or cannot serve, as OpenAI would say it."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def body(self) -> dict[str, object]:
        kind = _TYPES.get(self.status, "api_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class GatewayMetrics:
    """The gateway's counters (plain Counters: the loop is single-threaded)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[tuple[int, str]] = Counter()
        self.decisions: Counter[tuple[str, str]] = Counter()
        self.ratings: Counter[tuple[str, str]] = Counter()
        self.backend_calls: Counter[tuple[str, str]] = Counter()
        self.routes: Counter[tuple[str, str]] = Counter()
        self.fsyncs: Callable[[], int] = lambda: 0

    def error(self, err: ApiError) -> None:
        self.errors[(err.status, err.code)] += 1

    def render(self) -> str:
        """The gateway's families, in the node's exposition format (one renderer: ``node.metrics``)."""
        out: list[str] = []
        for name, help_text, samples in (
            ("metamesh_gateway_requests_total", "HTTP requests by endpoint and status.",
             [({"endpoint": e, "status": s}, n) for (e, s), n in sorted(self.requests.items())]),
            ("metamesh_gateway_errors_total", "Refused or failed requests, by status and error code.",
             [({"status": s, "code": c}, n) for (s, c), n in sorted(self.errors.items())]),
            ("metamesh_gateway_decisions_total", "Decisions made, by category and strategy.",
             [({"category": c, "strategy": s}, n) for (c, s), n in sorted(self.decisions.items())]),
            ("metamesh_gateway_feedback_total", "Ratings accepted, by category and strategy.",
             [({"category": c, "strategy": s}, n) for (c, s), n in sorted(self.ratings.items())]),
            ("metamesh_gateway_backend_calls_total", "Calls to backends, by backend and outcome.",
             [({"backend": b, "outcome": o}, n) for (b, o), n in sorted(self.backend_calls.items())]),
            ("metamesh_gateway_routes_total", "Requests to the virtual model, by category and backend.",
             [({"category": c, "backend": b}, n) for (c, b), n in sorted(self.routes.items())]),
            ("metamesh_gateway_journal_fsyncs_total", "fsyncs of the feedback journal (ratings batch).",
             [({}, self.fsyncs())]),
        ):  # fmt: skip
            family(out, name, "counter", help_text, [(labels, float(n)) for labels, n in samples])
        return "\n".join(out) + "\n"
