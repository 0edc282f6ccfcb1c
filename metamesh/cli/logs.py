"""Logging setup for every subcommand: human-readable by default, JSON on request.

Only metamesh's own loggers speak at the chosen level. Third-party libraries
(httpx logs every request at INFO, asyncio, urllib3, matplotlib, ...) are held
at WARNING unless the level is ``debug``: a node on a real LLM would otherwise
write thousands of ``HTTP Request: POST ...`` lines a minute.
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["NOISY", "setup_logging"]

#: Libraries known to log routine work at INFO or DEBUG; set to WARNING outright
#: (below debug) so they do not even build the records.
NOISY = ("httpx", "httpcore", "asyncio", "urllib3", "matplotlib", "PIL", "filelock", "torch")

#: Logger names that are ours: ``metamesh.*``, scripts run as ``__main__``, the root logger.
_OURS = ("metamesh", "__main__", "root")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "t": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class _QuietLibraries(logging.Filter):
    """Pass our own records at any level, anyone else's at WARNING and above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.partition(".")[0] in _OURS


def setup_logging(level: str = "info", *, json_logs: bool = False) -> None:
    """Log to stderr at ``level``; third-party libraries only from WARNING unless ``debug``."""
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(_JsonFormatter())
    else:
        fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        fmt.converter = time.localtime
        handler.setFormatter(fmt)
    numeric = getattr(logging, level.upper(), logging.INFO)
    debug = numeric <= logging.DEBUG
    if not debug:
        handler.addFilter(_QuietLibraries())
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
