"""The experiment commands share metamesh.cli.studies, never each other's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import metamesh.cli
import metamesh.experiments


def test_no_cli_module_imports_a_private_name_of_another() -> None:
    for path in Path(metamesh.cli.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("metamesh.cli"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"


def test_every_study_module_is_under_400_lines() -> None:
    for path in Path(metamesh.experiments.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path.name
