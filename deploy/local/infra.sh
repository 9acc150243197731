#!/usr/bin/env bash
# Kafka and Postgres for the revops services on this machine (no container engine).
#
#   deploy/local/infra.sh up|down|status
#
# up:     installs what is missing (deploy/local/bootstrap.sh), starts Postgres on
#         127.0.0.1:5432 and Kafka on 127.0.0.1:9092, then creates the topics (`revops
#         topics ensure`; libs/events names them). Idempotent: on a running system it
#         only checks, in about 3 s (most of it importing the revops CLI).
# down:   stops both (a Postgres this project did not start is left alone).
# status: exit 0 when both answer.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE="$ROOT/deploy/local"

# Each step reports its own failure (missing Java, Maven unreachable, port taken, ...);
# this only says which step it was, so the last line of output names the culprit.
step() {
  local name="$1"
  shift
  "$@" || die "$name failed (see the message above)"
}

ensure_topics() {
  if ! command -v uv >/dev/null 2>&1; then
    die "uv not found: run deploy/local/bootstrap.sh (or: pip install uv) first"
  fi
  # The operator CLI comes with libs/events; `uv run` installs the workspace if needed.
  # Look for its script rather than run `revops --help`: importing the CLI takes seconds.
  if ! uv_run sh -c 'command -v revops' >/dev/null 2>&1; then
    warn "the revops CLI is not available (yet), so topics were NOT created; run \`uv run revops topics ensure\` once it is"
    return 0
  fi
  say "topics: revops topics ensure"
  KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${KAFKA_PORT:-9092}" uv_run revops topics ensure \
    || die "revops topics ensure failed"
}

up() {
  # What is missing on a fresh machine (Java, Maven, PostgreSQL, uv, the venv); about a
  # quarter of a second when nothing is.
  step "bootstrap" "$HERE/bootstrap.sh"
  step "postgres" "$HERE/postgres.sh" start
  step "kafka" "$HERE/kafka.sh" start
  ensure_topics
  say "infra: up (Kafka 127.0.0.1:${KAFKA_PORT:-9092}, Postgres 127.0.0.1:${PG_PORT:-5432})"
}

down() {
  # Both are attempted even if one fails, so `down` never leaves half the system up.
  "$HERE/kafka.sh" stop || warn "kafka stop failed"
  "$HERE/postgres.sh" stop || warn "postgres stop failed"
}

status() {
  local rc=0
  "$HERE/postgres.sh" status || rc=1
  "$HERE/kafka.sh" status || rc=1
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
