#!/bin/sh
# Run by the postgres image's entrypoint after postgres-init.sql, on the first start only
# (docker-compose.yml mounts it into /docker-entrypoint-initdb.d): gives the services'
# roles the passwords from .env instead of their names, which are public; the services
# listen on 0.0.0.0 in their containers and refuse to log in with those.
set -e
psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v router="${ROUTER_DB_PASSWORD:?}" \
  -v attribution="${ATTRIBUTION_DB_PASSWORD:?}" \
  -v renewals="${RENEWALS_DB_PASSWORD:?}" <<'SQL'
ALTER ROLE router PASSWORD :'router';
ALTER ROLE attribution PASSWORD :'attribution';
ALTER ROLE renewals PASSWORD :'renewals';
SQL
