"""An experiment's output folder: written only when it is new, empty, or an earlier run's.

A run marks the folder it claims with :data:`MARKER`, a small JSON file with
the command, its options, the time and the names the run writes at the top of
the folder. A folder that is neither empty nor marked holds somebody's files
and is refused; a marked one is replaced only when asked (``--force``), and
then only the names the earlier run and this one write are removed: files a
user put beside them stay.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from metamesh.errors import ConfigError

__all__ = ["MARKER", "OutputRefused", "claim", "clear", "earlier_outputs"]

#: The file a metamesh run leaves in its output folder, so a later run knows the folder is its own.
MARKER = ".metamesh-run"


class OutputRefused(ConfigError):
    """The output folder holds files no metamesh run wrote, or an earlier run's results without --force."""


def _checked(names: Iterable[str]) -> list[str]:
    """Plain entry names only: a name with a separator or '..' could reach outside the folder."""
    out = []
    for name in names:
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"not a plain name inside an output folder: {name!r}")
        out.append(name)
    return out


def earlier_outputs(root: Path) -> list[str] | None:
    """The names the run that marked ``root`` wrote; None when ``root`` holds no marker."""
    marker = root / MARKER
    if not marker.is_file():
        return None
    try:
        doc = json.loads(marker.read_text())
        names = doc.get("outputs", []) if isinstance(doc, dict) else []
        return _checked(n for n in names if isinstance(n, str))
    except (OSError, ValueError):
        return []  # a damaged marker still says the folder is a run's; remove only this run's names


def clear(root: Path, names: Iterable[str]) -> None:
    """Remove the named entries of ``root`` (folders with their contents); absent ones are skipped."""
    for name in _checked(names):
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def claim(
    root: Path, outputs: Iterable[str], *, command: str, options: Mapping[str, Any], force: bool
) -> bool:
    """Make ``root`` this run's output folder, or raise :class:`OutputRefused` with one line saying why.

    True when an earlier run's results were replaced.

    Missing or empty: created and marked. Marked by an earlier run: with ``force`` the earlier
    run's names and this run's are removed, then the folder is marked anew. Anything else is
    refused, and nothing in it is touched.
    """
    names = _checked(outputs)
    replaced = False
    if root.exists() and not root.is_dir():
        raise OutputRefused(f"{root} is a file, not a folder: choose another --out")
    if root.is_dir() and any(root.iterdir()):
        earlier = earlier_outputs(root)
        if earlier is None:
            raise OutputRefused(
                f"{root} is not empty and no metamesh run wrote it; nothing was changed: "
                "choose a new or empty folder with --out"
            )
        if not force:
            raise OutputRefused(
                f"{root} holds the results of an earlier run: use --force to replace them, "
                "or choose another --out"
            )
        clear(root, dict.fromkeys([*earlier, *names]))
        replaced = True
    root.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": command,
        "options": {k: v if isinstance(v, int | float | bool | None) else str(v) for k, v in options.items()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "outputs": names,
    }
    (root / MARKER).write_text(json.dumps(doc, indent=2) + "\n")
    return replaced
