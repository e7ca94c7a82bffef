# braze-proxy: the two commands are `make run` (start the proxy on its embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := redis-server redis-tools prometheus nginx wrk util-linux openssl

.PHONY: run demo test test-unit lint typecheck docs install deps system-deps bench soak lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The proxy and its runtime dependencies, in a local virtual environment: installed once (editable, so source
# changes need no reinstall), again only when pyproject.toml changes. The stamps live in the venv.
INSTALLED := $(VENV)/.installed
DEPS_INSTALLED := $(VENV)/.deps-installed
# -qq: errors only (not setuptools' notes on editable installs, dozens of lines each time).
PIP_QUIET := -qq --disable-pip-version-check

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip
	$(BIN)/python -m pip install $(PIP_QUIET) -e .
	@touch $@

# Runtime + test dependencies (the tools the tests run for real included).
$(DEPS_INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[test]'
	@touch $@ $(INSTALLED)

install: $(INSTALLED)

deps: $(DEPS_INSTALLED)

# Tools the tests and the bench run for real (redis-server, promtool/prometheus, nginx, wrk).
system-deps:
	@missing=""; \
	for tool in redis-server redis-cli openssl promtool prometheus nginx wrk; do command -v $$tool >/dev/null || missing=yes; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

# Start the proxy on its embedded default: in-process memory store, listening on 0.0.0.0:8080.
run: install
	$(BIN)/braze-proxy

# The Braze stand-in and the proxy in front of it: try it without a Braze key. The proxy listens on DEMO_PORT;
# the stand-in on DEMO_STANDIN_PORT (0: any free port), and the proxy is pointed at the port the stand-in
# actually bound (its READY line), never at whatever else may listen on a fixed one.
DEMO_PORT ?= 8080
DEMO_STANDIN_PORT ?= 0
demo: install
	@out=$$(mktemp); $(BIN)/python -m tests.support.braze_standin --port $(DEMO_STANDIN_PORT) > $$out & standin=$$!; \
	trap 'kill $$standin 2>/dev/null; rm -f $$out' EXIT INT TERM; \
	for _ in $$(seq 100); do grep -q '^READY ' $$out && break; kill -0 $$standin 2>/dev/null || break; sleep 0.1; done; \
	upstream=$$(sed -n 's/^READY //p' $$out); \
	if [ -z "$$upstream" ]; then echo "make demo: the stand-in did not start (is port $(DEMO_STANDIN_PORT) taken?)" >&2; exit 1; fi; \
	echo "stand-in: $$upstream; proxy: http://127.0.0.1:$(DEMO_PORT)"; \
	echo "try: curl -si 'http://127.0.0.1:$(DEMO_PORT)/sessions/data_series?length=7' -H 'Authorization: Bearer demo-key'  (twice)"; \
	BRAZE_PROXY_PORT=$(DEMO_PORT) BRAZE_PROXY_UPSTREAM_URL=$$upstream $(BIN)/braze-proxy

# The pure level alone (tests/unit: no socket, no subprocess, no sleep), in seconds, with no network at all:
# under `unshare -n` not even loopback is reachable (`unshare -rn` where user namespaces allow it without root).
# Where neither works it runs with the network (the folder's own guard still fails a test that does I/O);
# under CI=true that is an error, not a skip.
test-unit: deps
	@if unshare -n true 2>/dev/null; then isolate="unshare -n"; \
	elif unshare -rn true 2>/dev/null; then isolate="unshare -rn"; \
	elif [ "$$CI" = true ]; then echo "make test-unit: unshare -n is not available; CI must run the pure tests without a network" >&2; exit 1; \
	else isolate=""; echo "make test-unit: unshare -n is not available here; running with the network" >&2; fi; \
	PYTHONDONTWRITEBYTECODE= $$isolate $(BIN)/python -m pytest -q tests/unit

# Four workers on two cores: the suite's processes spend part of their time waiting on sockets and
# timers. Bytecode caches on even where PYTHONDONTWRITEBYTECODE is set: otherwise each of the suite's
# ~130 Python processes compiles the project (and pytest rewrites hypothesis) from source again; compiled
# up front, so that on a fresh clone the workers do not all compile the same files at once.
TEST_WORKERS ?= 4
test: deps system-deps
	$(BIN)/python -m compileall -q -j 0 proxy tests bench
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: deps
	$(BIN)/ruff check proxy tests bench
	$(BIN)/ruff format --check proxy tests bench

typecheck: deps
	$(BIN)/mypy

# The docs site (mkdocs.yml, Material theme), built strictly into build/site: a broken link or a page left
# out of the nav fails it.
docs: deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: deps system-deps
	$(BIN)/python -m bench
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.collapse

soak: deps system-deps
	$(BIN)/python -m tests.support.soak --seconds 300

# requirements.lock: the image's runtime dependencies (the `otel` extra included: the image can trace), pinned
# with hashes. Resolved for CPython 3.11 on linux
# x86_64 and aarch64 (the two must agree), wheels only, from releases published before LOCK_BEFORE, so a rerun
# writes the same file; raise LOCK_BEFORE to take newer releases.
UV_VERSION := 0.13.8
LOCK_BEFORE ?= 2026-12-01
LOCK_PLATFORMS := x86_64-manylinux_2_28 aarch64-manylinux_2_28
lock:
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/python -m pip install --quiet uv==$(UV_VERSION)
	for platform in $(LOCK_PLATFORMS); do \
		build/lock/bin/uv pip compile pyproject.toml --extra otel --quiet --no-cache --python-version 3.11 \
			--python-platform $$platform --only-binary :all: --generate-hashes --exclude-newer $(LOCK_BEFORE) \
			--custom-compile-command 'make lock' --output-file build/lock/$$platform.txt || exit 1; \
	done
	cmp $(foreach platform,$(LOCK_PLATFORMS),build/lock/$(platform).txt)
	cp build/lock/$(firstword $(LOCK_PLATFORMS)).txt requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
