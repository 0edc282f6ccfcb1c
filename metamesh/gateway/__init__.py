"""The application face: an OpenAI-compatible HTTP API on a node that learns from its users' ratings.

- ``server``: :class:`Gateway` and its settings; uvicorn serving it on the node's own loop; ``serve``
- ``app``: the Starlette routes (chat completions, streaming too; models; feedback; metrics; health)
- ``requests``: reading bodies within limits, field by field
- ``backends``: the models behind it (OpenAI-compatible servers, Ollama, the managed local model)
- ``learner``: the node's learner: the prompt learner plus the decisions awaiting feedback
- ``security``: API keys and the rate per key
- ``errors``: OpenAI-style error objects and the gateway's counters

Only a node that serves a gateway imports this package (Starlette and uvicorn with it):
``pip install 'metamesh[gateway]'``.
"""

from metamesh.gateway.backends import Backend, BackendError, OpenAIBackend, parse_backend
from metamesh.gateway.errors import ApiError
from metamesh.gateway.learner import GatewayLearner
from metamesh.gateway.requests import Limits
from metamesh.gateway.server import Gateway, GatewayConfig, build_gateway, serve

__all__ = [
    "ApiError",
    "Backend",
    "BackendError",
    "Gateway",
    "GatewayConfig",
    "GatewayLearner",
    "Limits",
    "OpenAIBackend",
    "build_gateway",
    "parse_backend",
    "serve",
]
