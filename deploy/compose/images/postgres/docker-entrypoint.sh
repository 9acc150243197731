#!/bin/bash
# The part of postgres:15's entrypoint this project uses: on the first start (an empty
# PGDATA) create the cluster with POSTGRES_USER / POSTGRES_PASSWORD, create POSTGRES_DB,
# run /docker-entrypoint-initdb.d/*.sql and *.sh with a server that listens on its socket
# only; then run the command (`postgres ...`) listening on every address.
set -euo pipefail

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
shift

user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || {
    echo "error: set POSTGRES_PASSWORD (the superuser's password)" >&2
    exit 1
  }
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql=(psql -X -v ON_ERROR_STOP=1 --username "$user" --no-password)
  if [ "$database" != postgres ]; then
    "${psql[@]}" --dbname postgres -c "CREATE DATABASE \"$database\""
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sql) echo "running $script" && "${psql[@]}" --dbname "$database" -f "$script" ;;
      *.sh) echo "running $script" && . "$script" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up."
fi
exec postgres "$@"
