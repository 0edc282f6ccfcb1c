"""Import checks in a fresh interpreter: which modules pull in torch, and what works when torch is absent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

BLOCK_TORCH = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ImportError('torch is not installed on this device')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def torch_modules_after_importing(modules: Sequence[str]) -> str:
    """The torch modules loaded by importing ``modules`` ('' when none)."""
    code = (
        "import sys\n"
        f"for name in {list(modules)!r}: __import__(name)\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def run_with_torch_blocked(code: str) -> None:
    """Run ``code`` where importing torch fails outright, as on an edge device; raise if it fails."""
    subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], timeout=60, check=True)
