#!/usr/bin/env bash
# Kafka and Postgres for the revops services on this machine (no container engine).
#
#   deploy/local/infra.sh up|down|status [--brokers 3]
#
# up:     installs what is missing (deploy/local/bootstrap.sh), starts Postgres on
#         127.0.0.1:5432 and Kafka on 127.0.0.1:9092, then creates the topics (`revops
#         topics ensure`; libs/events names them). Idempotent: on a running system it
#         only checks, in about 3 s (most of it importing the revops CLI).
# down:   stops both (a Postgres this project did not start is left alone).
# status: exit 0 when both answer.
# --brokers 3: also a cluster of three Kafka nodes (deploy/local/kafka-cluster.sh: brokers
#         on 127.0.0.1:9192-9194, state in .state/kafka-3), with the topics created there
#         with 3 replicas. The single broker on 9092 stays the default and keeps running.
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

BROKERS=1

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
  if [ "$BROKERS" -eq 3 ]; then
    say "topics on the three-node cluster: revops topics ensure (3 replicas)"
    KAFKA_BOOTSTRAP_SERVERS="$("$HERE/kafka-cluster.sh" bootstrap)" TOPIC_REPLICATION_FACTOR=3 \
      uv_run revops topics ensure || die "revops topics ensure on the cluster failed"
  fi
}

up() {
  # What is missing on a fresh machine (Java, Maven, PostgreSQL, uv, the venv); about a
  # quarter of a second when nothing is.
  step "bootstrap" "$HERE/bootstrap.sh"
  step "postgres" "$HERE/postgres.sh" start
  step "kafka" "$HERE/kafka.sh" start
  if [ "$BROKERS" -eq 3 ]; then
    step "kafka cluster" "$HERE/kafka-cluster.sh" start
  fi
  ensure_topics
  say "infra: up (Kafka 127.0.0.1:${KAFKA_PORT:-9092}, Postgres 127.0.0.1:${PG_PORT:-5432})"
  if [ "$BROKERS" -eq 3 ]; then
    say "infra: the three-node Kafka cluster answers on $("$HERE/kafka-cluster.sh" bootstrap)"
  fi
}

down() {
  # Both are attempted even if one fails, so `down` never leaves half the system up.
  if [ "$BROKERS" -eq 3 ]; then
    "$HERE/kafka-cluster.sh" stop || warn "kafka cluster stop failed"
  fi
  "$HERE/kafka.sh" stop || warn "kafka stop failed"
  "$HERE/postgres.sh" stop || warn "postgres stop failed"
}

status() {
  local rc=0
  "$HERE/postgres.sh" status || rc=1
  "$HERE/kafka.sh" status || rc=1
  if [ "$BROKERS" -eq 3 ]; then
    "$HERE/kafka-cluster.sh" status || rc=1
  fi
  return "$rc"
}

command="${1:-}"
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers)
      BROKERS="${2:-}"
      shift 2 || true
      ;;
    --brokers=*)
      BROKERS="${1#--brokers=}"
      shift
      ;;
    *) die "unknown option '$1' (usage: $0 up|down|status [--brokers 1|3])" ;;
  esac
done
[[ "$BROKERS" == 1 || "$BROKERS" == 3 ]] || die "--brokers takes 1 (the default) or 3, not '$BROKERS'"

case "$command" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status [--brokers 1|3]" >&2
    exit 2
    ;;
esac
