#!/usr/bin/env bash
# A Docker-API container engine for docker-compose.yml and its test: the machine's own
# engine when one answers (Docker Desktop, dockerd, a podman socket in DOCKER_HOST), else
# Debian's podman, installed if missing and served on a socket of this checkout.
#
#   deploy/compose/engine.sh up       install and start podman's Docker API if needed
#   deploy/compose/engine.sh env      print `export DOCKER_HOST=...` for the engine in use
#   deploy/compose/engine.sh down     stop the podman service this script started
#   deploy/compose/engine.sh status   exit 0 when the engine answers
#
# podman runs here with runc and cgroupfs and no default ulimits: Debian's crun refuses
# hybrid cgroup (v1 + v2) hosts, and machines without systemd have no systemd cgroups.
# Its settings live in .state/podman/containers.conf, not in /etc: nothing of the
# machine's own configuration changes.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

PODMAN_STATE="$STATE/podman"
SOCKET="$PODMAN_STATE/podman.sock"
PIDFILE="$PODMAN_STATE/service.pid"
HEALTH_PIDFILE="$PODMAN_STATE/healthchecks.pid"
CONF="$PODMAN_STATE/containers.conf"
LOG="$PODMAN_STATE/service.log"
READY_TIMEOUT_S="${PODMAN_READY_TIMEOUT_S:-30}"

# True when a Docker API answers at DOCKER_HOST (or the default socket).
api_answers() {
  local host="${1:-}"
  command -v docker >/dev/null 2>&1 || return 1
  if [ -n "$host" ]; then
    DOCKER_HOST="$host" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  fi
}

# The engine to use: DOCKER_HOST as given, the machine's default socket, or ours.
engine_host() {
  if [ -n "${DOCKER_HOST:-}" ] && api_answers "$DOCKER_HOST"; then
    echo "$DOCKER_HOST"
  elif [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ] && api_answers "unix:///var/run/docker.sock"; then
    echo "unix:///var/run/docker.sock"
  elif [ -S "$SOCKET" ] && api_answers "unix://$SOCKET"; then
    echo "unix://$SOCKET"
  else
    return 1
  fi
}

install_podman() {
  local -a missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  # Bridge networks and name resolution between containers (compose's default network).
  [ -x /usr/lib/podman/netavark ] || missing+=(netavark)
  [ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
  # The Docker CLI talks to podman's socket (docker-compose needs no CLI, the tests do).
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 \
    || missing+=(docker-compose)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
}

write_config() {
  mkdir -p "$PODMAN_STATE"
  cat >"$CONF" <<'CONF'
# Written by deploy/compose/engine.sh; edits are overwritten on the next start.
[containers]
# The image's own limits; podman's default would raise nofile beyond what some
# sandboxes allow.
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
# No journald needed.
events_logger = "file"
CONF
}

podman_cmd() { CONTAINERS_CONF="$CONF" podman "$@"; }

# podman schedules health checks with systemd timers; without systemd (containers,
# CI machines) none ever runs, every container stays "starting" and compose's
# `condition: service_healthy` waits forever. This loop runs each container's check at
# the interval its definition asks for, as the timers would.
run_healthchecks() {
  set +e # a failed check or a container gone meanwhile must not end the loop
  declare -A last_run=() running=()
  local id interval now
  while kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null; do
    now="$(date +%s)"
    while read -r id interval; do
      [[ "$id" =~ ^[0-9a-f]+$ && "$interval" =~ ^[0-9]+$ ]] || continue
      [ "$interval" -gt 0 ] || interval=30
      if [ -n "${running[$id]:-}" ] && kill -0 "${running[$id]}" 2>/dev/null; then
        continue
      fi
      if [ $((now - ${last_run[$id]:-0})) -ge "$interval" ]; then
        last_run[$id]="$now"
        podman_cmd healthcheck run "$id" >/dev/null 2>&1 &
        running[$id]=$!
      fi
    done < <(podman_cmd ps -q | xargs -r env CONTAINERS_CONF="$CONF" podman inspect \
      --format '{{if .Config.Healthcheck}}{{.Id}} {{printf "%.0f" .Config.Healthcheck.Interval.Seconds}}{{end}}' \
      2>/dev/null || true)
    sleep 1
  done
}

start_podman() {
  [ "$(id -u)" -eq 0 ] \
    || die "no container engine answers and podman's Docker API needs root here: run as root, or start Docker/podman yourself and set DOCKER_HOST"
  install_podman
  write_config
  rm -f "$SOCKET"
  say "engine: starting podman's Docker API on $SOCKET ..."
  # --time=0: the service stays up until `down`, not 5 s after the last request. Started
  # in / : conmon takes the service's working directory, and a checkout removed while the
  # service runs (a clone the tests ran in) left it unable to start any container.
  (cd / && CONTAINERS_CONF="$CONF" exec setsid podman system service --time=0 "unix://$SOCKET" \
    >"$LOG" 2>&1 </dev/null) &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until api_answers "unix://$SOCKET"; do
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      tail -n 20 "$LOG" >&2
      die "podman system service exited (log: $LOG)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "podman's Docker API did not answer within ${READY_TIMEOUT_S}s (log: $LOG)"
    sleep 0.5
  done
  if ! command -v systemctl >/dev/null 2>&1 || ! [ -S /run/systemd/private ]; then
    (cd / && run_healthchecks) >>"$LOG" 2>&1 </dev/null &
    echo $! >"$HEALTH_PIDFILE"
  fi
}

case "${1:-}" in
  up)
    if host="$(engine_host)"; then
      say "engine: $host answers"
    else
      start_podman
      say "engine: podman answers on unix://$SOCKET"
    fi
    ;;
  env)
    host="$(engine_host)" || die "no container engine answers: run deploy/compose/engine.sh up"
    echo "export DOCKER_HOST=$host"
    ;;
  status)
    engine_host
    ;;
  down)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      kill "$(cat "$PIDFILE")"
      say "engine: podman service stopped"
    fi
    if [ -f "$HEALTH_PIDFILE" ] && kill -0 "$(cat "$HEALTH_PIDFILE")" 2>/dev/null; then
      kill "$(cat "$HEALTH_PIDFILE")"
    fi
    rm -f "$PIDFILE" "$HEALTH_PIDFILE" "$SOCKET"
    ;;
  *)
    die "usage: $0 up|env|status|down"
    ;;
esac
