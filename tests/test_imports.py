"""The core is importable without torch, and the public surface is what we mean it to be."""

from __future__ import annotations

import subprocess
import sys

import metamesh.protocol

CORE = ["metamesh", "metamesh.protocol", "metamesh.errors"]


def test_core_never_imports_torch() -> None:
    code = (
        "import sys\n"
        f"for name in {CORE!r}: __import__(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"torch imported by the core: {out.stdout}"


def test_core_imports_with_torch_blocked() -> None:
    """Simulates an edge device: importing torch fails outright."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is not installed on this device')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {CORE!r}: __import__(name)\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=60, check=True)


def test_protocol_public_names() -> None:
    public = {n for n in dir(metamesh.protocol) if not n.startswith("_")}
    modules = {"arrays", "codec", "envelope", "kinds", "limits", "annotations"}
    assert public - modules == set(metamesh.protocol.__all__)
