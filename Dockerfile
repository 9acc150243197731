# One image definition for every service of the event bus: ingest, router, attribution,
# renewals or the console, chosen with the SERVICE build argument. Built from the
# repository root (the uv workspace):
#   docker build --build-arg SERVICE=router -t revops-router .
# PYTHON_IMAGE is the base: python:3.11-slim, or revops-python:3.11 where no registry
# can be reached (deploy/compose/base-images.sh builds it from Debian's packages).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG SERVICE
# Each service's own port (its settings' default); HTTP_PORT overrides it at run time.
RUN case "${SERVICE:-}" in \
      ingest) port=8000 ;; router) port=8001 ;; attribution) port=8002 ;; \
      renewals) port=8003 ;; console) port=8004 ;; \
      *) echo "build with --build-arg SERVICE=ingest|router|attribution|renewals|console (got '${SERVICE:-}')" >&2; exit 1 ;; \
    esac \
 && mkdir -p /app && echo "$port" >/app/http-port

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv from PyPI, pinned like the lock file it reads.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first, in their own layer: it changes only with uv.lock. uv needs every
# workspace member's pyproject.toml to read the workspace, not their sources.
COPY pyproject.toml uv.lock ./
COPY libs/events/pyproject.toml libs/events/
COPY services/ingest/pyproject.toml services/ingest/
COPY services/router/pyproject.toml services/router/
COPY services/attribution/pyproject.toml services/attribution/
COPY services/renewals/pyproject.toml services/renewals/
COPY services/console/pyproject.toml services/console/
RUN uv sync --frozen --no-dev --package "revops-${SERVICE}" --no-install-workspace

# Then the code: the shared library and this service only.
COPY libs/events libs/events
COPY services/${SERVICE} services/${SERVICE}
RUN uv sync --frozen --no-dev --package "revops-${SERVICE}" --no-editable \
 && ln -s "revops-${SERVICE}" /app/.venv/bin/revops-service

RUN useradd --system --uid 10001 --no-create-home revops
USER revops

ENV PATH="/app/.venv/bin:$PATH" \
    HTTP_HOST=0.0.0.0
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('HTTP_PORT') or open('/app/http-port').read().strip(); urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
CMD ["revops-service"]
