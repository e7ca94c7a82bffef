# braze-proxy container image.
#
#   build: docker build -t braze-proxy:0.1.0 \
#            --build-arg REVISION="$(git rev-parse HEAD)" --build-arg SOURCE=https://git.example.internal/braze-proxy .
#   run:   docker run --rm -p 8080:8080 -e BRAZE_PROXY_REDIS_URL=redis://redis:6379/0 braze-proxy:0.1.0
#
# Port 8080 serves the proxied endpoint, /healthz, /readyz and /metrics (BRAZE_PROXY_PORT changes it;
# BRAZE_PROXY_METRICS_PORT moves /metrics, /healthz and /readyz to a port of their own). The health check
# asks /healthz on whichever port serves it. Settings are BRAZE_PROXY_* variables: see `braze-proxy --help`.
# Tracing works out of the box: the lock holds the `otel` extra (OpenTelemetry SDK and OTLP/HTTP exporter), so
# setting OTEL_EXPORTER_OTLP_ENDPOINT (docs/tracing.md) is enough; the build fails if they cannot be imported.
#
# Everything that lands in the image is pinned: the base image by digest (the multi-platform index, so
# amd64 and arm64 builds both resolve), the dependencies by hash (requirements.lock, `make lock`), the
# build tools by version. PYTHON_IMAGE is the index digest docker-library's repo-info recorded for
# python:3.11.16-slim-bookworm (built 2026-09-01). To move it, read the current one with
# `docker buildx imagetools inspect python:3.11-slim-bookworm` and pass --build-arg PYTHON_IMAGE=...@sha256:...

ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

# --- build: a virtualenv holding the locked dependencies and the project ---------------------------------
FROM ${PYTHON_IMAGE} AS build
# The versions the base image ships (pip: a current release); pinned so that a different PYTHON_IMAGE
# cannot change how the project is built.
ARG PIP_VERSION=26.3
ARG SETUPTOOLS_VERSION=79.0.1
ARG WHEEL_VERSION=0.46.3
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# The virtualenv gets no pip and no setuptools of its own: the build stage's pinned pip installs into it
# (--python), so the runtime image carries no installer.
RUN python -m pip install --no-cache-dir \
        "pip==${PIP_VERSION}" "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}" \
    && python -m venv --without-pip /opt/venv
# The lock first, so the dependency layer survives source-only changes. --require-hashes: every file is
# checked against the lock, and a dependency missing from it fails the build instead of being resolved.
COPY requirements.lock ./
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir \
        --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# The project as a wheel, built by the pinned setuptools (--no-build-isolation: no build tools fetched
# afresh), then installed with --no-deps: every dependency came from the lock above.
RUN python -m pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /tmp/dist . \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-index --no-deps /tmp/dist/*.whl \
    && /opt/venv/bin/braze-proxy --help > /dev/null \
    && /opt/venv/bin/python -c "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter"

# --- runtime: the virtualenv only; no compiler, no installer, no source tree, no build caches --------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="braze-proxy" \
      org.opencontainers.image.description="Caching reverse proxy for Braze's analytics export (data series) endpoints" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRAZE_PROXY_PORT=8080
# The base image's pip, setuptools and wheel (and ensurepip's copies) go: nothing installs at run time, and
# each is code an attacker could use. The last line fails the build if any of them is still importable.
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN python -m pip uninstall --yes --no-input --root-user-action=ignore pip setuptools wheel \
    && rm -rf /usr/local/bin/pip /usr/local/bin/pip3* /usr/local/lib/python3.*/ensurepip/_bundled \
    && python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('pip', 'setuptools', 'wheel')))" \
    && groupadd --system --gid 10001 braze \
    && useradd --system --uid 10001 --gid braze --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin braze
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('BRAZE_PROXY_METRICS_PORT') or os.environ.get('BRAZE_PROXY_PORT', '8080'); urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
ENTRYPOINT ["braze-proxy"]
