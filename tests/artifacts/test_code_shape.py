"""The package stays in small parts that show the architecture: no module over 400 lines, no class over 200, no
function over 70, anywhere in the tree; at most eight modules at the top; and no package imports one that sits
above it in the layering written down below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "proxy"
MODULES = sorted(PACKAGE.rglob("*.py"))

# The layers, bottom first. A part may import the parts of the layers below it, and itself; never a part of its
# own layer or of a layer above. Top-level modules are parts of their own.
LAYERS: list[tuple[str, ...]] = [
    ("__init__",),  # the version
    ("core",),  # pure: no I/O at all
    ("obs",),  # metrics, process stats, logs, tracing
    ("redis",),  # one connection on any topology, its health
    ("settings",),  # read from the environment once, at start-up
    ("cache",),  # the answer stores and the L1
    ("budget",),  # token buckets, the gate, who pays
    ("upstream",),  # Braze: client, fetcher, refusals, one question asked
    ("fill",),  # flights, the cross-replica lock and fill, refreshes
    ("windows",),  # windows from buckets
    ("driver",),  # the request driver
    ("day2",),  # admin API, warming, the live tokens file
    ("components", "preflight"),  # the composition root; --check's look at Redis
    ("http",),  # the aiohttp shell
    ("cli", "devtools"),  # start-up; development-time generators
    ("__main__",),
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """`proxy.core.query` -> `core`; `proxy` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    """The proxy modules `path` imports (type-only imports included: they are a dependency too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "proxy":
            if node.module != "proxy":
                found.add(node.module)
                continue
            for alias in node.names:  # `from proxy import __version__` is the package's own; else a module
                found.add("proxy" if alias.name == "__version__" else f"proxy.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "proxy"}
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_class_and_function_sizes(path: Path) -> None:
    source = path.read_text()
    name = path.relative_to(PACKAGE)
    assert len(source.splitlines()) <= 400, f"{name} is over 400 lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= 200, f"{name}: class {node.name} is {size} lines"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= 70, f"{name}: {node.name} is {size} lines"


def test_at_most_eight_modules_at_the_top_and_every_part_is_placed() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    parts = {part_of(module_name(p)) for p in MODULES}
    assert parts <= set(RANK), parts - set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_climbs_the_layers(path: Path) -> None:
    mine = part_of(module_name(path))
    for imported in imports(path):
        theirs = part_of(imported)
        if theirs == mine:
            continue
        assert RANK[theirs] < RANK[mine], f"{module_name(path)} imports {imported}: {theirs} is not below {mine}"


def test_core_does_no_io() -> None:
    """The pure layer imports nothing that talks to the network, the disk or the clock of a process."""
    banned = {"aiohttp", "redis", "asyncio", "socket", "subprocess", "os", "pathlib", "time", "prometheus_client"}
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            assert not set(names) & banned, f"{path.relative_to(PACKAGE)} imports {set(names) & banned}"


def test_the_driver_drives_a_handful_of_collaborators() -> None:
    """Service keeps the order of things; each job it had before the split has its own owner (issue 9)."""
    tree = ast.parse((PACKAGE / "driver.py").read_text())
    (service,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Service"]
    (init,) = [node for node in service.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
    names = [arg.arg for arg in init.args.kwonlyargs]
    assert len(names) <= 7, names
    collaborators = {"cache", "filler", "asker", "windows"}
    assert collaborators <= set(names), names
    size = (service.end_lineno or service.lineno) - service.lineno + 1
    assert size <= 130, f"Service is {size} lines"
