"""The dependency rules between the parts hold: ``lint-imports`` with pyproject.toml's contracts.

The contracts (``[tool.importlinter]``): errors and protocol import nothing of metamesh (protocol
only errors); gossip never the node, learners, coordinator, experiments or cli; the node never
learners, coordinator, experiments or cli (learners register by entry point); learners never cli,
coordinator or experiments; nothing imports cli.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_import_contract_is_kept() -> None:
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
