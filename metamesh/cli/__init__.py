"""The ``metamesh`` command: one module per subcommand, numbered exit codes."""

from __future__ import annotations

from metamesh.cli.main import main

__all__ = ["main"]
