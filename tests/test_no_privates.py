"""Tests use public seams: no test reaches into an object's private attributes.

Every ``x._name`` attribute access in tests/**/*.py fails this test, except on ``self`` or
``cls`` (a test's own helper class) and the few third-party internals listed below, each with
its reason. A node or transport a test needs to look into gets a public seam instead (a
property, a method, the in-memory transport twin).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

TESTS = Path(__file__).parent

#: (file relative to tests/, attribute): why it is allowed.
ALLOWED = {
    ("conftest.py", "_sockets"): "pyzmq keeps no public list of a context's sockets; the fixture needs it",
    ("node/test_settings.py", "_actions"): "argparse exposes a parser's actions only as _actions",
    ("node/test_config_sections.py", "_action_groups"): "argparse: a parser's argument groups",
    ("node/test_config_sections.py", "_group_actions"): "argparse: an argument group's actions",
}


def private_accesses(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append((node.lineno, name))
    return found


def test_no_test_touches_a_private_attribute() -> None:
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS).as_posix()
        for line, name in private_accesses(path):
            if (rel, name) not in ALLOWED:
                offences.append(f"tests/{rel}:{line}: .{name}")
    assert not offences, "tests reach into privates (add a public seam):\n" + "\n".join(offences)


def test_the_check_sees_an_access_and_the_allowlist_is_all_in_use() -> None:
    assert private_accesses(Path(__file__)) == []
    sample = TESTS / "conftest.py"
    assert (sample.relative_to(TESTS).as_posix(), "_sockets") in {
        (sample.relative_to(TESTS).as_posix(), n) for _, n in private_accesses(sample)
    }
    for rel, name in ALLOWED:
        assert name in {n for _, n in private_accesses(TESTS / rel)}, f"{rel}: .{name} is allowed but unused"
