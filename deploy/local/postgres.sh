#!/usr/bin/env bash
# Postgres on 127.0.0.1:5432 for the revops services, without a container engine.
#
#   deploy/local/postgres.sh start|stop|status
#
# start: when no server answers on 127.0.0.1:5432, install Debian's `postgresql` if
# missing, create a cluster on that port (loopback only, password login over TCP,
# max_connections=200, commit timestamps on) and start it. Then run
# deploy/local/postgres-init.sql, which creates the roles, databases (revops,
# revops_test, revops_bench) and schemas that are missing, prints each, and alters
# nothing that exists.
#
# A Postgres it did not create (a server already on the port, or a Debian cluster it did
# not make) is used as is: no settings, pg_hba.conf or port edits, no restart, no
# password changes. REVOPS_PG_ADOPT=1 lets it configure such a cluster as its own
# (settings, pg_hba rule, port, restart); REVOPS_PG_RESET_PASSWORDS=1 sets the roles'
# passwords back to their names. A role that exists with a password of its own is
# reached with <ROLE>_DATABASE_URL (e.g. ROUTER_DATABASE_URL=postgresql://router:...@
# 127.0.0.1:5432/revops), which deploy/local/services.sh hands to that service.
#
# stop: stops the Debian cluster on 5432 if this script created it; anything else is left
# alone.
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
# A cluster this script created carries its settings file; one without it is someone
# else's (or Debian's, made by the package) and is not changed without REVOPS_PG_ADOPT=1.
OURS_FILE="conf.d/revops.conf"
ADOPT="${REVOPS_PG_ADOPT:-0}"
RESET_PASSWORDS="${REVOPS_PG_RESET_PASSWORDS:-0}"
ROLES=(revops router attribution renewals)

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
  note_package_clusters
}

# A cluster is ours when it carries our settings file, or when the package install this
# project ran made it (then nobody else has used it yet).
cluster_is_ours() {
  local version="$1" name="$2"
  [ -f "/etc/postgresql/$version/$name/$OURS_FILE" ] && return 0
  grep -qxF "$version $name" "$PACKAGE_CLUSTERS" 2>/dev/null
}

# Pick the cluster to run: the one already on our port (ours, or adopted), else our own
# new one. Prints "<version> <name>". A cluster of someone else's on another port is never
# moved (unless adopted): a new cluster is made beside it.
ensure_cluster() {
  local found version name
  found="$(cluster_on_port)"
  if [ -n "$found" ]; then
    read -r version name <<<"$found"
    if ! cluster_is_ours "$version" "$name" && [ "$ADOPT" != 1 ]; then
      die "cluster $version/$name (not created by this project) is configured for port $PORT and is not running; this script neither starts nor changes it. Start it yourself (pg_ctlcluster $version $name start) to have it used as is, set REVOPS_PG_ADOPT=1 to let this script configure and start it, or set PG_PORT to another port for a cluster of our own"
    fi
    echo "$found"
    return
  fi
  version="$(newest_installed_version)"
  name="$CLUSTER"
  if [ -d "/etc/postgresql/$version/$name" ]; then
    if cluster_is_ours "$version" "$name" || [ "$ADOPT" = 1 ]; then
      say "postgres: moving cluster $version/$name to port $PORT" >&2
      as_root pg_conftool "$version" "$name" set port "$PORT" >/dev/null
      echo "$version $name"
      return
    fi
    say "postgres: cluster $version/$name exists (another port) and is left alone" >&2
    name="revops"
    if [ -d "/etc/postgresql/$version/$name" ]; then
      die "clusters $version/$CLUSTER and $version/$name exist, neither on port $PORT: set PG_PORT to the port of one of them, or PG_CLUSTER to a new name for a cluster of our own on $PORT"
    fi
  fi
  say "postgres: creating cluster $version/$name on port $PORT (data in /var/lib/postgresql/$version/$name, settings in /etc/postgresql/$version/$name)" >&2
  # The package's postinst usually made `main` already; a bare install may not have.
  as_root pg_createcluster "$version" "$name" --port "$PORT" >/dev/null
  echo "$version $name"
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
    say "postgres: setting port $PORT in $dir/postgresql.conf"
    as_root pg_conftool "$version" "$name" set port "$PORT" >/dev/null
    RESTART_NEEDED=1
  fi
  as_root grep -q "^include_dir = 'conf.d'" "$dir/postgresql.conf" \
    || { say "postgres: adding include_dir = 'conf.d' to $dir/postgresql.conf" \
      && printf "include_dir = 'conf.d'\n" | as_root tee -a "$dir/postgresql.conf" >/dev/null; }
  # track_commit_timestamp: the end-to-end benchmark reads when each row committed
  # (pg_xact_commit_timestamp) instead of polling the tables while it runs.
  wanted="# Written by deploy/local/postgres.sh.
listen_addresses = '$HOST'
max_connections = $MAX_CONNECTIONS
track_commit_timestamp = on"
  if [ "$(as_root cat "$ours" 2>/dev/null || true)" != "$wanted" ]; then
    say "postgres: writing $ours (listen on $HOST only, max_connections, commit timestamps)"
    as_root mkdir -p "$dir/conf.d"
    printf '%s\n' "$wanted" | as_root tee "$ours" >/dev/null
    RESTART_NEEDED=1
  fi
  # Password (scram) login for TCP from 127.0.0.1, placed first so no earlier rule
  # (peer, ident, reject) wins; pg_hba.conf is first-match.
  if ! as_root grep -qF "$HBA_MARK" "$hba"; then
    say "postgres: adding a password login rule for $HOST to $hba"
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
  local out="$STATE/postgres-init.out" err="$STATE/postgres-init.err" reset=off
  [ "$RESET_PASSWORDS" = 1 ] && reset=on
  if superuser_psql -v ON_ERROR_STOP=1 -v reset_passwords="$reset" <"$INIT_SQL" >"$out" 2>"$err"; then
    # What was created (nothing, on a machine already set up), one line each.
    sed -n 's/^\(created\|set\) /postgres: &/p' "$out"
    return
  fi
  # A Postgres we did not start (another cluster, a container) may not let us in as
  # its superuser; that is fine if it is already set up.
  if psql -X -q "$(login_url revops)" -c 'SELECT 1' >/dev/null 2>&1; then
    warn "could not run postgres-init.sql as superuser ($(head -n 1 "$err")); the revops role and databases already exist, carrying on"
    return
  fi
  cat "$err" >&2
  die "could not set up roles and databases on $HOST:$PORT: run deploy/local/postgres-init.sql as a superuser (or set PG_SUPERUSER_URL=postgresql://<superuser>:<password>@$HOST:$PORT/postgres)"
}

# How a role logs in, as a libpq URL: <ROLE>_DATABASE_URL when set (a role that existed
# before, with a password of its own), else the development password (its name).
login_url() {
  local role="$1" var url
  var="$(printf '%s' "$role" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
  url="${!var:-postgresql://$role:$role@$HOST:$PORT/revops}"
  printf '%s' "${url/postgresql+asyncpg:/postgresql:}"
}

check_logins() {
  local role var
  for role in "${ROLES[@]}"; do
    var="$(printf '%s' "$role" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
    if psql -X -q "$(login_url "$role")" -tAc 'SELECT 1' >/dev/null 2>"$STATE/postgres-login.err"; then
      continue
    fi
    if [ -n "${!var:-}" ]; then
      die "role $role cannot log in with $var ($(head -n 1 "$STATE/postgres-login.err"))"
    fi
    die "role $role cannot log in over TCP on $HOST:$PORT with the development password ($(head -n 1 "$STATE/postgres-login.err")). If it existed before with a password of its own (left as it is), set $var=postgresql://$role:<its password>@$HOST:$PORT/revops; REVOPS_PG_RESET_PASSWORDS=1 sets it to the development one instead"
  done
}

# --- commands -------------------------------------------------------------------------

start() {
  mkdir -p "$STATE"
  local found version name
  if port_open "$HOST" "$PORT"; then
    found="$(cluster_on_port)"
    read -r version name <<<"${found:-- -}"
    if [ -n "$found" ] && { cluster_is_ours "$version" "$name" || [ "$ADOPT" = 1 ]; }; then
      # Ours (or adopted): make sure its settings are ours too.
      start_debian_cluster
    elif [ -n "$found" ]; then
      say "postgres: using cluster $version/$name on $HOST:$PORT as it is (not created by this project: its settings, pg_hba.conf, port and existing roles are left alone; REVOPS_PG_ADOPT=1 lets this script configure it)"
    else
      local owner
      owner="$(port_owner "$PORT")"
      say "postgres: using the server already listening on $HOST:$PORT${owner:+ ($owner)} as it is (not a cluster this project manages: nothing of it is changed)"
    fi
  else
    ensure_installed
    start_debian_cluster
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  apply_init_sql
  check_logins
  say "postgres: ready on $HOST:$PORT (databases revops, revops_test, revops_bench; roles revops, router, attribution, renewals)"
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
  if ! cluster_is_ours "$version" "$name" && [ "$ADOPT" != 1 ]; then
    say "postgres: cluster $version/$name was not created by this project; leaving it running"
    return
  fi
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
