-- Roles, databases and schemas of the revops event bus. Idempotent: run it as a
-- superuser, connected to any database, as often as you like:
--   su postgres -c 'psql -X -v ON_ERROR_STOP=1' < deploy/local/postgres-init.sql
-- deploy/local/postgres.sh runs it on every start; docker-compose.yml mounts it into
-- postgres:15's /docker-entrypoint-initdb.d.
--
-- One role per service, owning the schema of its name in both databases and nothing
-- else: a service cannot read, let alone change, another service's tables. Passwords
-- equal the role names: these are local, loopback-only development credentials.

\set ON_ERROR_STOP on

-- Roles: created when missing, and (re)set to what this file says when present.
SELECT format('CREATE ROLE %I', name)
  FROM unnest(ARRAY['revops', 'router', 'attribution', 'renewals']) AS name
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name)
\gexec

ALTER ROLE revops      LOGIN PASSWORD 'revops'      NOSUPERUSER CREATEDB   NOCREATEROLE;
ALTER ROLE router      LOGIN PASSWORD 'router'      NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE attribution LOGIN PASSWORD 'attribution' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE renewals    LOGIN PASSWORD 'renewals'    NOSUPERUSER NOCREATEDB NOCREATEROLE;

-- Databases: `revops` is the running system, `revops_test` the tests', `revops_bench` the
-- end-to-end benchmarks' and fault checks' (bench/system.py), so they never touch either.
SELECT format('CREATE DATABASE %I OWNER revops', name)
  FROM unnest(ARRAY['revops', 'revops_test', 'revops_bench']) AS name
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = name)
\gexec

ALTER DATABASE revops OWNER TO revops;
ALTER DATABASE revops_test OWNER TO revops;
ALTER DATABASE revops_bench OWNER TO revops;

-- Only our roles may connect; none of them may create schemas of its own.
REVOKE ALL ON DATABASE revops, revops_test, revops_bench FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE revops, revops_test, revops_bench TO router, attribution, renewals;

-- The same schemas in each database. A schema grants nothing to anyone but its owner,
-- so router cannot even look up a table in attribution's schema.
\connect revops
CREATE SCHEMA IF NOT EXISTS router AUTHORIZATION router;
CREATE SCHEMA IF NOT EXISTS attribution AUTHORIZATION attribution;
CREATE SCHEMA IF NOT EXISTS renewals AUTHORIZATION renewals;
ALTER SCHEMA router OWNER TO router;
ALTER SCHEMA attribution OWNER TO attribution;
ALTER SCHEMA renewals OWNER TO renewals;
-- Nothing of ours belongs in public; keep it readable for extensions only.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

\connect revops_test
CREATE SCHEMA IF NOT EXISTS router AUTHORIZATION router;
CREATE SCHEMA IF NOT EXISTS attribution AUTHORIZATION attribution;
CREATE SCHEMA IF NOT EXISTS renewals AUTHORIZATION renewals;
ALTER SCHEMA router OWNER TO router;
ALTER SCHEMA attribution OWNER TO attribution;
ALTER SCHEMA renewals OWNER TO renewals;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

\connect revops_bench
CREATE SCHEMA IF NOT EXISTS router AUTHORIZATION router;
CREATE SCHEMA IF NOT EXISTS attribution AUTHORIZATION attribution;
CREATE SCHEMA IF NOT EXISTS renewals AUTHORIZATION renewals;
ALTER SCHEMA router OWNER TO router;
ALTER SCHEMA attribution OWNER TO attribution;
ALTER SCHEMA renewals OWNER TO renewals;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
