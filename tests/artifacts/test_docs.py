"""The docs site: `mkdocs build --strict` (every page in the nav, every link and anchor resolving), and the
facts the pages share with the code: the runbooks the alerts link to, the README's size and links."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.support.external_tools import binary, module

REPO = Path(__file__).resolve().parents[2]
INSTALL = "pip install -e '.[test]' (mkdocs, mkdocs-material)"
README_MAX_LINES = 160


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    module("material", INSTALL)  # the theme mkdocs.yml names
    mkdocs = binary("mkdocs", INSTALL)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # Each alert's runbook_url path is a page of the site (the chart swaps only the base in front of it).
    rules = yaml.safe_load((REPO / "config" / "prometheus-alerts.yml").read_text())
    base = "https://braze-proxy.example/runbooks/"
    for rule in (r for group in rules["groups"] for r in group["rules"] if "alert" in r):
        path = rule["annotations"]["runbook_url"].removeprefix(base)
        assert (tmp_path / "site" / "runbooks" / path / "index.html").is_file(), rule["alert"]
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_the_site_url_is_the_runbook_base() -> None:
    config = (REPO / "mkdocs.yml").read_text()
    assert re.search(r"^site_url: https://braze-proxy\.example/$", config, re.MULTILINE)


def nav_pages(node: object) -> set[str]:
    """Every page a (nested) mkdocs nav names."""
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(nav_pages(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(nav_pages(item) for item in node))
    return set()


def test_every_page_is_in_the_nav() -> None:
    nav = nav_pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])
    pages = {page.relative_to(REPO / "docs").as_posix() for page in (REPO / "docs").rglob("*.md")}
    assert pages == nav


def test_readme_is_short_and_its_links_resolve() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), f"README links to {target}, which does not exist"
    for stale in ("python:3.11-slim`", "honorLabels: true", "`endpoint`, `cache`"):
        assert stale not in readme, stale


def test_every_test_file_the_docs_name_exists() -> None:
    """Test files move between levels (tests/unit, inprocess, processes, artifacts): a page naming one must
    follow it. Paths are named from the repository root or, in the development page's tables, from tests/."""
    pages = [REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    for page in pages:
        text = page.read_text()
        for path in re.findall(r"\btests/[\w/]+\.py\b", text):
            assert (REPO / path).is_file(), f"{page.relative_to(REPO)} names {path}, which does not exist"
        for path in re.findall(r"`((?:unit|inprocess|processes|artifacts)/test_\w+\.py)`", text):
            assert (REPO / "tests" / path).is_file(), (
                f"{page.relative_to(REPO)} names tests/{path}, which does not exist"
            )
