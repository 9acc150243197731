#!/usr/bin/env bash
# Start, stop or show the four services and the web console on this machine, in the
# background.
#   deploy/local/services.sh start|stop|status
# Each service is one process (its API and its consumer), the console one more (it reads
# the services' APIs); logs in .state/logs/<svc>.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="$ROOT/.state"
RUN="$STATE/run"
LOGS="$STATE/logs"
SERVICES=(ingest:8000 router:8001 attribution:8002 renewals:8003 console:8004)
READY_TIMEOUT_S="${READY_TIMEOUT_S:-90}"

mkdir -p "$RUN" "$LOGS"

pid_of() { [ -f "$RUN/$1.pid" ] && cat "$RUN/$1.pid" || true; }
alive() { local pid; pid="$(pid_of "$1")"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ready() { curl -fsS -m 2 "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; }

start_one() {
  local name="$1" port="$2"
  if alive "$name"; then
    echo "$name: already running (pid $(pid_of "$name"))"
    return
  fi
  if port_busy "$port"; then
    # Who holds it, when ss can tell (e.g. "python",pid=123,fd=6): the thing to stop.
    local owner
    owner="$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1 || true)"
    echo "error: port $port (for $name) is taken by another process${owner:+ ($owner)}; stop it first" >&2
    exit 1
  fi
  # <SVC>_DATABASE_URL (e.g. ROUTER_DATABASE_URL): this service's login, for a role that
  # existed with a password of its own (deploy/local/postgres.sh leaves it as it is).
  local url_var extra=()
  url_var="$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
  if [ -n "${!url_var:-}" ]; then
    extra=("DATABASE_URL=${!url_var}")
  fi
  # setsid: the service outlives this script and gets its own process group.
  env "${extra[@]}" HTTP_PORT="$port" setsid "$ROOT/.venv/bin/revops-$name" \
    >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
  echo "$name: started (pid $!, port $port, log .state/logs/$name.log)"
}

wait_ready() {
  local name="$1" port="$2" waited=0
  until ready "$port"; do
    if ! alive "$name"; then
      echo "error: $name exited while starting; last lines of its log:" >&2
      tail -n 20 "$LOGS/$name.log" >&2
      exit 1
    fi
    if [ "$waited" -ge "$READY_TIMEOUT_S" ]; then
      echo "error: $name not ready after ${READY_TIMEOUT_S}s; its /readyz says:" >&2
      curl -sS -m 2 "http://127.0.0.1:$port/readyz" >&2 || true
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "$name: ready on http://127.0.0.1:$port"
}

stop_one() {
  local name="$1" pid
  pid="$(pid_of "$name")"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$RUN/$name.pid"
    return
  fi
  kill -TERM "$pid"  # graceful: finish the batch, commit, leave the consumer group
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$RUN/$name.pid"
  echo "$name: stopped"
}

case "${1:-}" in
  start)
    [ -x "$ROOT/.venv/bin/revops-ingest" ] || { echo "error: run 'make bootstrap' first (no .venv)" >&2; exit 1; }
    for s in "${SERVICES[@]}"; do start_one "${s%%:*}" "${s##*:}"; done
    for s in "${SERVICES[@]}"; do wait_ready "${s%%:*}" "${s##*:}"; done
    ;;
  stop)
    for s in "${SERVICES[@]}"; do stop_one "${s%%:*}"; done
    ;;
  status)
    rc=0
    for s in "${SERVICES[@]}"; do
      name="${s%%:*}" port="${s##*:}"
      if alive "$name" && ready "$port"; then echo "$name: ready (pid $(pid_of "$name"), port $port)"
      elif alive "$name"; then echo "$name: running, not ready"; rc=1
      else echo "$name: stopped"; rc=1; fi
    done
    exit $rc
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
