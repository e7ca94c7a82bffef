"""The package stays in small parts: no module over 400 lines, no class over 200, no function over 70."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "proxy"
MODULES = sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_class_and_function_sizes(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= 400, f"{path.name} is over 400 lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= 200, f"{path.name}: class {node.name} is {size} lines"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= 70, f"{path.name}: {node.name} is {size} lines"
