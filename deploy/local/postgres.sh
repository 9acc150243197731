#!/usr/bin/env bash
# Postgres on 127.0.0.1:5432 for the revops services, without a container engine.
#
#   deploy/local/postgres.sh start|stop|status
#
# start: use the Postgres already listening on 127.0.0.1:5432 if there is one; else
# install Debian's `postgresql` when missing, create or adopt a cluster on port 5432
# (loopback only, password login over TCP, max_connections=200, commit timestamps on)
# and start it. Then apply deploy/local/postgres-init.sql (roles, databases revops and
# revops_test, one schema per service). Idempotent. stop: stops the Debian cluster on 5432; a Postgres this script
# does not manage is left alone.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
# Overridable to run a second, throw-away cluster beside the usual one (measurements).
PORT="${PG_PORT:-5432}"
CLUSTER="${PG_CLUSTER:-main}"
MAX_CONNECTIONS=200
INIT_SQL="$ROOT/deploy/local/postgres-init.sql"
START_TIMEOUT_S="${PG_START_TIMEOUT_S:-60}"
# psql waits forever on a server that accepts TCP but never answers; bound it.
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"
HBA_MARK="# revops: password login over loopback (deploy/local/postgres.sh)"

# --- Debian's cluster tools -----------------------------------------------------------

# "<version> <name>" of the Debian cluster configured for our port, if any.
cluster_on_port() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters -h 2>/dev/null | awk -v port="$PORT" '$3 == port { print $1, $2; exit }'
}

newest_installed_version() {
  find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -n 1
}

ensure_installed() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(newest_installed_version)" ]; then
    return
  fi
  apt_install postgresql
}

# Pick the cluster to run: the one already on our port, else `<newest> main` moved to
# our port, else a new one. Prints "<version> <name>".
ensure_cluster() {
  local found version
  found="$(cluster_on_port)"
  if [ -n "$found" ]; then
    echo "$found"
    return
  fi
  version="$(newest_installed_version)"
  if [ -d "/etc/postgresql/$version/$CLUSTER" ]; then
    as_root pg_conftool "$version" "$CLUSTER" set port "$PORT" >/dev/null
  else
    say "postgres: creating cluster $version/$CLUSTER on port $PORT" >&2
    # The package's postinst usually made `main` already; a bare install may not have.
    as_root pg_createcluster "$version" "$CLUSTER" --port "$PORT" >/dev/null
  fi
  echo "$version $CLUSTER"
}

# Our settings and pg_hba rule; sets RESTART_NEEDED=1 when a setting changed (they all
# need a restart). Not a return code: errexit does not apply inside `f && ...`.
RESTART_NEEDED=0
configure_cluster() {
  local version="$1" name="$2"
  local dir="/etc/postgresql/$version/$name"
  local hba="$dir/pg_hba.conf" ours="$dir/conf.d/revops.conf" wanted
  # The port stays in postgresql.conf, where pg_lsclusters looks for it (a number, so
  # pg_conftool writes it as is; it quotes strings inconsistently, hence conf.d below).
  if [ "$(as_root pg_conftool -s "$version" "$name" show port 2>/dev/null || true)" != "$PORT" ]; then
    as_root pg_conftool "$version" "$name" set port "$PORT" >/dev/null
    RESTART_NEEDED=1
  fi
  as_root grep -q "^include_dir = 'conf.d'" "$dir/postgresql.conf" \
    || printf "include_dir = 'conf.d'\n" | as_root tee -a "$dir/postgresql.conf" >/dev/null
  # track_commit_timestamp: the end-to-end benchmark reads when each row committed
  # (pg_xact_commit_timestamp) instead of polling the tables while it runs.
  wanted="# Written by deploy/local/postgres.sh.
listen_addresses = '$HOST'
max_connections = $MAX_CONNECTIONS
track_commit_timestamp = on"
  if [ "$(as_root cat "$ours" 2>/dev/null || true)" != "$wanted" ]; then
    as_root mkdir -p "$dir/conf.d"
    printf '%s\n' "$wanted" | as_root tee "$ours" >/dev/null
    RESTART_NEEDED=1
  fi
  # Password (scram) login for TCP from 127.0.0.1, placed first so no earlier rule
  # (peer, ident, reject) wins; pg_hba.conf is first-match.
  if ! as_root grep -qF "$HBA_MARK" "$hba"; then
    as_root sed -i "0,/^[[:space:]]*[^#[:space:]]/s||$HBA_MARK\nhost    all    all    $HOST/32    scram-sha-256\n&|" "$hba"
    RESTART_NEEDED=1
  fi
}

cluster_online() {
  pg_lsclusters -h 2>/dev/null | awk -v v="$1" -v n="$2" '$1 == v && $2 == n { print $4 }' \
    | grep -q online
}

wait_accepting() {
  local waited=0
  until port_open "$HOST" "$PORT"; do
    if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
      die "postgres did not accept connections on $HOST:$PORT within ${START_TIMEOUT_S}s; see /var/log/postgresql/"
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

start_debian_cluster() {
  local cluster version name
  cluster="$(ensure_cluster)"
  read -r version name <<<"$cluster"
  configure_cluster "$version" "$name"
  if cluster_online "$version" "$name"; then
    if [ "$RESTART_NEEDED" -eq 1 ]; then
      say "postgres: restarting $version/$name to apply its settings"
      as_root pg_ctlcluster "$version" "$name" restart
    fi
  else
    say "postgres: starting cluster $version/$name"
    as_root pg_ctlcluster "$version" "$name" start \
      || die "pg_ctlcluster $version $name start failed; see /var/log/postgresql/postgresql-$version-$name.log"
  fi
  wait_accepting
}

# --- the roles, databases and schemas -----------------------------------------------

# psql as the local superuser over the Unix socket (peer auth), when there is one.
superuser_psql() {
  if [ -n "${PG_SUPERUSER_URL:-}" ]; then
    psql -X -q "$PG_SUPERUSER_URL" "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    # su takes one command line: each argument quoted again, so "-c 'a query'" stays whole.
    su postgres -c "PGCONNECT_TIMEOUT=$PGCONNECT_TIMEOUT psql -X -q -p $PORT $(printf '%q ' "$@")"
  else
    sudo -u postgres psql -X -q -p "$PORT" "$@"
  fi
}

apply_init_sql() {
  if superuser_psql -v ON_ERROR_STOP=1 <"$INIT_SQL" >/dev/null 2>"$STATE/postgres-init.err"; then
    return
  fi
  # A Postgres we did not start (another cluster, a container) may not let us in as
  # its superuser; that is fine if it is already set up.
  if PGPASSWORD=revops psql -X -q -h "$HOST" -p "$PORT" -U revops -d revops_test -c 'SELECT 1' >/dev/null 2>&1; then
    warn "could not run postgres-init.sql as superuser ($(head -n 1 "$STATE/postgres-init.err")); the revops role and databases already exist, carrying on"
    return
  fi
  cat "$STATE/postgres-init.err" >&2
  die "could not set up roles and databases on $HOST:$PORT: run deploy/local/postgres-init.sql as a superuser (or set PG_SUPERUSER_URL=postgresql://<superuser>:<password>@$HOST:$PORT/postgres)"
}

check_logins() {
  local role
  for role in revops router attribution renewals; do
    PGPASSWORD="$role" psql -X -q -h "$HOST" -p "$PORT" -U "$role" -d revops -tAc 'SELECT 1' >/dev/null 2>&1 \
      || die "role $role cannot log in with its password over TCP on $HOST:$PORT (check pg_hba.conf)"
  done
}

# --- commands -------------------------------------------------------------------------

start() {
  mkdir -p "$STATE"
  if port_open "$HOST" "$PORT"; then
    local found
    found="$(cluster_on_port)"
    if [ -n "$found" ]; then
      # Ours (a Debian cluster): make sure its settings are ours too.
      start_debian_cluster
    else
      say "postgres: something already listens on $HOST:$PORT; using it"
    fi
  else
    ensure_installed
    start_debian_cluster
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  apply_init_sql
  check_logins
  say "postgres: ready on $HOST:$PORT (databases revops, revops_test; roles revops, router, attribution, renewals)"
}

stop() {
  local cluster version name
  cluster="$(cluster_on_port)"
  if [ -z "$cluster" ]; then
    if port_open "$HOST" "$PORT"; then
      say "postgres: the server on $HOST:$PORT is not a cluster this script manages; leaving it running"
    else
      say "postgres: not running"
    fi
    return
  fi
  read -r version name <<<"$cluster"
  if cluster_online "$version" "$name"; then
    as_root pg_ctlcluster "$version" "$name" stop -m fast
    say "postgres: stopped cluster $version/$name"
  else
    say "postgres: not running"
  fi
}

status() {
  if port_open "$HOST" "$PORT"; then
    say "postgres: accepting connections on $HOST:$PORT"
    return 0
  fi
  say "postgres: not running"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  psql) shift; superuser_psql "$@" ;;  # psql as the superuser (bench/pg_waits.py uses it)
  *)
    echo "usage: $0 start|stop|status|psql [psql arguments]" >&2
    exit 2
    ;;
esac
