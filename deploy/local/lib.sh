# Helpers shared by the deploy/local scripts. Sourced, not run.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
STATE="${REVOPS_STATE_DIR:-$ROOT/.state}"
# The Debian clusters that exist right after this project installed the postgresql
# package (the package makes one): deploy/local/postgres.sh may configure those.
PACKAGE_CLUSTERS="$STATE/postgres-package-clusters"

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# True when something accepts TCP connections on host:port. bash's /dev/tcp needs no
# extra package (a fresh Debian image has neither ss nor nc); `timeout` keeps a
# firewalled port from hanging us.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# Best-effort description of who listens on a port, for error messages.
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1
  fi
}

# Run as root, or through sudo when we are not root (a developer's laptop).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

# apt-get install only what is missing; update the index once, and only if needed.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  say "installing $* (apt-get) ..."
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || die "apt-get update failed: is the Debian mirror reachable?"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >/dev/null || die "apt-get install $* failed"
}

# `uv run` without touching uv.lock: several people edit pyproject files at once.
uv_run() { (cd "$ROOT" && uv run --frozen "$@"); }

# Record the clusters the postgresql package just made (see PACKAGE_CLUSTERS).
note_package_clusters() {
  mkdir -p "$STATE"
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk '{ print $1, $2 }' >>"$PACKAGE_CLUSTERS"
  fi
}
