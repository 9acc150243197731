#!/usr/bin/env bash
# Install what this project needs on a fresh Debian machine, only what is missing:
#   - Java and Maven (the Kafka broker runs from Maven Central jars),
#   - PostgreSQL (the services' database),
#   - docker-compose (Debian's v1: validates docker-compose.yml without an engine;
#     skipped when the `docker compose` plugin works),
#   - chromium (Debian's: the console's browser tests drive it; nothing downloads one),
#   - promtool (Debian's `prometheus`: the alert rules' unit tests run it),
#   - uv (from PyPI), then the Python workspace (`uv sync`).
# Idempotent; on a machine that has everything it prints one line and takes ~1 s.
#   deploy/local/bootstrap.sh
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v pg_ctlcluster >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 || missing+=(postgresql)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
# With a font: recommended by chromium, not pulled in without the recommendations.
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
  # The package made a cluster: ours to configure (postgres.sh leaves others alone).
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    note_package_clusters
  fi
fi

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (pip) ..."
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  # Debian's own python3 refuses system-wide pip installs (PEP 668); a user install of
  # one self-contained binary is harmless.
  python3 -m pip install -q uv 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages uv \
    || die "pip install uv failed: is PyPI reachable?"
  hash -r
  if ! command -v uv >/dev/null 2>&1; then
    export PATH="$HOME/.local/bin:$PATH"
    command -v uv >/dev/null 2>&1 || die "uv installed but not on PATH; add ~/.local/bin to PATH"
    warn "uv is in ~/.local/bin: add it to PATH"
  fi
fi

# --frozen: install exactly uv.lock, never rewrite it (several people edit pyprojects).
# Playwright (the browser tests' driver) never fetches a browser: it drives chromium.
(cd "$ROOT" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 uv sync --frozen --quiet) || die "uv sync failed (see above)"
say "bootstrap: java, mvn, postgresql, $(command -v docker-compose >/dev/null && echo docker-compose || echo 'docker compose'), chromium, promtool, uv and the workspace are installed"
