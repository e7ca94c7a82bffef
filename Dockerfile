# braze-proxy container image.
#
#   build: docker build -t braze-proxy:0.1.0 .
#   run:   docker run --rm -p 8080:8080 -e BRAZE_PROXY_REDIS_URL=redis://redis:6379/0 braze-proxy:0.1.0
#
# Port 8080 serves the proxied endpoint, /healthz, /readyz and /metrics (BRAZE_PROXY_PORT changes it;
# BRAZE_PROXY_METRICS_PORT moves /metrics, /healthz and /readyz to a port of their own). The health check
# asks /healthz on whichever port serves it. Settings are BRAZE_PROXY_* variables: see `braze-proxy --help`.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv holding the pinned dependencies and the project --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv
# The lock first, so the dependency layer survives source-only changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-virtualenv -r requirements.lock
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# --no-deps: every dependency comes from the lock above, never resolved afresh.
RUN pip install --no-cache-dir --require-virtualenv --no-deps . \
    && braze-proxy --help > /dev/null

# --- runtime: the virtualenv only; no compiler, no source tree, no build caches ---------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="braze-proxy" \
      org.opencontainers.image.description="Caching reverse proxy for Braze's GET /sessions/data_series" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRAZE_PROXY_PORT=8080
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 braze \
    && useradd --system --uid 10001 --gid braze --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin braze
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('BRAZE_PROXY_METRICS_PORT') or os.environ.get('BRAZE_PROXY_PORT', '8080'); urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
ENTRYPOINT ["braze-proxy"]
