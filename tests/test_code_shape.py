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


def test_the_service_drives_a_handful_of_collaborators() -> None:
    """Service keeps the order of things; each job it had before the split has its own owner (issue 9)."""
    tree = ast.parse((PACKAGE / "service.py").read_text())
    (service,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Service"]
    (init,) = [node for node in service.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
    names = [arg.arg for arg in init.args.kwonlyargs]
    assert len(names) <= 7, names
    collaborators = {"cache", "filler", "asker", "windows"}
    assert collaborators <= set(names), names
    size = (service.end_lineno or service.lineno) - service.lineno + 1
    assert size <= 130, f"Service is {size} lines"
