"""The files of a node's event log, rotated by size, and reading them back in order.

A node appends to ``events.jsonl``; when that file would grow past its bound it
is renamed ``events.1.jsonl`` (an older ``events.1.jsonl`` becomes
``events.2.jsonl``, and so on) and a fresh ``events.jsonl`` is started. At most
``keep`` files exist, the current one included; the oldest is dropped. Each
rename is atomic, so a crash during rotation loses no line: at worst a number
is skipped, and readers sort by number, not by position.

Readers (reports, experiment drivers, tests) call :func:`read_events` with the
current file's path and get every line of every file, oldest first.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_KEEP", "DEFAULT_MAX_BYTES", "log_files", "read_events", "rotate"]

#: Bound of one file before it is rotated.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: Files kept, the current one included: 50 MB of history a node at most.
DEFAULT_KEEP = 5


def _rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.stem}.{n}{path.suffix}")


def _numbered(path: Path) -> list[tuple[int, Path]]:
    pattern = re.compile(rf"{re.escape(path.stem)}\.(\d+){re.escape(path.suffix)}")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    found = [(int(m.group(1)), path.parent / name) for name in names if (m := pattern.fullmatch(name))]
    return sorted(found)


def log_files(path: Path) -> list[Path]:
    """The files of the event log whose current file is ``path``, oldest first; only those that exist."""
    older = [p for _, p in reversed(_numbered(path))]
    return [*older, path] if path.exists() else older


def rotate(path: Path, keep: int) -> None:
    """Shift ``path`` to ``.1``, ``.1`` to ``.2``, ...; drop what falls past ``keep`` files.

    Raises OSError.
    """
    numbered = _numbered(path)
    for n, old in reversed(numbered):
        if n + 1 >= keep:
            old.unlink(missing_ok=True)
        else:
            os.replace(old, _rotated(path, n + 1))
    if keep > 1:
        os.replace(path, _rotated(path, 1))
    else:
        path.unlink(missing_ok=True)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event of the log whose current file is ``path``, across rotations, oldest first.

    A line cut short (by a crash, or being written right now) is skipped, as is
    any line that is not a JSON object.
    """
    out: list[dict[str, Any]] = []
    for file in log_files(path):
        try:
            text = file.read_text(errors="replace")
        except FileNotFoundError:
            continue  # rotated away between listing and reading
        for line in text.splitlines():
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
    return out
