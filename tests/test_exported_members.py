"""The library's public surface is exactly what we mean it to be, and it needs no torch.

After httpx's tests/test_exported_members.py: ``metamesh.__all__`` names every public name and no
other, each resolves, and each has a docstring; ``from metamesh import Node, NodeConfig, Learner,
run_node`` works where torch cannot be imported, and ``import metamesh`` alone loads nothing else.
"""

from __future__ import annotations

import subprocess
import sys

import metamesh
from tests.torchless import run_with_torch_blocked

PUBLIC = {
    # running nodes
    "Node",
    "NodeConfig",
    "load_config",
    "run_node",
    # the contract a learner implements, and the messages it shares and merges
    "Learner",
    "Body",
    "Insight",
    "QTable",
    "Delta",
    "Prompt",
    "Meta",
    "GLOBAL_DOMAIN",
    # many nodes in one process, for tests of a learner
    "MemoryNetwork",
    "Faults",
    # what goes wrong
    "MetameshError",
    "ConfigError",
    "__version__",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(metamesh.__all__) == PUBLIC
    assert len(metamesh.__all__) == len(PUBLIC)


def test_every_public_name_resolves_and_states_its_contract() -> None:
    for name in metamesh.__all__:
        value = getattr(metamesh, name)
        if name in ("GLOBAL_DOMAIN", "__version__"):
            assert isinstance(value, str)
            continue
        assert value.__module__.startswith("metamesh."), name
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    assert set(dir(metamesh)) >= PUBLIC


def test_nothing_else_is_public() -> None:
    code = (
        "import metamesh\n"
        "public = {n for n in vars(metamesh) if not n.startswith('_')} - {'annotations', 'importlib', "
        "'TYPE_CHECKING', 'Any'}\n"
        "assert public <= set(metamesh.__all__), public - set(metamesh.__all__)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_library_imports_where_torch_cannot() -> None:
    run_with_torch_blocked(
        "from metamesh import Node, NodeConfig, Learner, run_node\n"
        "from metamesh import Body, Insight, QTable, Delta, Prompt, Meta\n"
        "import sys\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
    )


def test_importing_the_package_alone_is_cheap() -> None:
    code = (
        "import sys, metamesh\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('metamesh.', 'zmq', 'numpy', 'torch')))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
