-- Roles, databases and schemas of the revops event bus. Run it as a superuser, connected
-- to any database, as often as you like:
--   su postgres -c 'psql -X -v ON_ERROR_STOP=1' < deploy/local/postgres-init.sql
-- deploy/local/postgres.sh runs it on every start; docker-compose.yml mounts it into
-- postgres:15's /docker-entrypoint-initdb.d.
--
-- One role per service, owning the schema of its name in each database and nothing
-- else: a service cannot read, let alone change, another service's tables. A role this
-- file creates gets its name as password: local, loopback-only development credentials.
--
-- It creates what is missing and alters nothing that exists: a role, database or schema
-- already there keeps its password, owner and grants (the server may be someone else's).
-- Each thing created is printed ("created ..."). Run with `-v reset_passwords=on` to
-- also set every role's password back to its name.
--
-- The `reporting` role is for BI tools: it reads the views of the `reporting` schema
-- and nothing else (docs/REPORTING.md). The services' migrations create the views, each
-- owned by the service's role, and grant them to `reporting`.

\set ON_ERROR_STOP on

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'revops') AS new_revops,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'router') AS new_router,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'attribution') AS new_attribution,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'renewals') AS new_renewals,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') AS new_reporting,
       NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'revops') AS new_db_revops,
       NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'revops_test') AS new_db_test,
       NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'revops_bench') AS new_db_bench
\gset

-- Roles.
\if :new_revops
CREATE ROLE revops LOGIN PASSWORD 'revops' NOSUPERUSER CREATEDB NOCREATEROLE;
\echo created role revops (password revops)
\endif
\if :new_router
CREATE ROLE router LOGIN PASSWORD 'router' NOSUPERUSER NOCREATEDB NOCREATEROLE;
\echo created role router (password router)
\endif
\if :new_attribution
CREATE ROLE attribution LOGIN PASSWORD 'attribution' NOSUPERUSER NOCREATEDB NOCREATEROLE;
\echo created role attribution (password attribution)
\endif
\if :new_renewals
CREATE ROLE renewals LOGIN PASSWORD 'renewals' NOSUPERUSER NOCREATEDB NOCREATEROLE;
\echo created role renewals (password renewals)
\endif
\if :new_reporting
CREATE ROLE reporting LOGIN PASSWORD 'reporting' NOSUPERUSER NOCREATEDB NOCREATEROLE;
\echo created role reporting (password reporting)
\endif

\if :{?reset_passwords}
\else
\set reset_passwords off
\endif
\if :reset_passwords
ALTER ROLE revops PASSWORD 'revops';
ALTER ROLE router PASSWORD 'router';
ALTER ROLE attribution PASSWORD 'attribution';
ALTER ROLE renewals PASSWORD 'renewals';
ALTER ROLE reporting PASSWORD 'reporting';
\echo set the passwords of roles revops, router, attribution, renewals, reporting to their names
\endif

-- Databases: `revops` is the running system, `revops_test` the tests', `revops_bench` the
-- end-to-end benchmarks' and fault checks' (bench/system.py), so they never touch either.
-- Only our roles may connect to one this file creates.
\if :new_db_revops
CREATE DATABASE revops OWNER revops;
REVOKE ALL ON DATABASE revops FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE revops TO router, attribution, renewals;
GRANT CONNECT ON DATABASE revops TO reporting;
\echo created database revops (owner revops)
\endif
\if :new_db_test
CREATE DATABASE revops_test OWNER revops;
REVOKE ALL ON DATABASE revops_test FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE revops_test TO router, attribution, renewals;
GRANT CONNECT ON DATABASE revops_test TO reporting;
\echo created database revops_test (owner revops)
\endif
\if :new_db_bench
CREATE DATABASE revops_bench OWNER revops;
REVOKE ALL ON DATABASE revops_bench FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE revops_bench TO router, attribution, renewals;
GRANT CONNECT ON DATABASE revops_bench TO reporting;
\echo created database revops_bench (owner revops)
\endif

-- The same schemas in each database, each owned by its service's role. A schema grants
-- nothing to anyone but its owner, so router cannot even look up a table in
-- attribution's schema. In a database created above, nothing of ours belongs in public
-- (kept readable for extensions only).
\connect revops
\set db revops
\set new_db :new_db_revops
SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'router') AS new_router_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'attribution') AS new_attribution_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'renewals') AS new_renewals_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'reporting') AS new_reporting_schema
\gset
\if :new_router_schema
CREATE SCHEMA router AUTHORIZATION router;
\echo created schema router in database :db
\endif
\if :new_attribution_schema
CREATE SCHEMA attribution AUTHORIZATION attribution;
\echo created schema attribution in database :db
\endif
\if :new_renewals_schema
CREATE SCHEMA renewals AUTHORIZATION renewals;
\echo created schema renewals in database :db
\endif
\if :new_reporting_schema
-- The services create their views here; the reporting role may only look them up.
CREATE SCHEMA reporting AUTHORIZATION revops;
GRANT USAGE, CREATE ON SCHEMA reporting TO router, attribution, renewals;
GRANT USAGE ON SCHEMA reporting TO reporting;
GRANT CONNECT ON DATABASE :"db" TO reporting;
\echo created schema reporting in database :db
\endif
\if :new_db
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\endif
\connect revops_test
\set db revops_test
\set new_db :new_db_test
SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'router') AS new_router_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'attribution') AS new_attribution_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'renewals') AS new_renewals_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'reporting') AS new_reporting_schema
\gset
\if :new_router_schema
CREATE SCHEMA router AUTHORIZATION router;
\echo created schema router in database :db
\endif
\if :new_attribution_schema
CREATE SCHEMA attribution AUTHORIZATION attribution;
\echo created schema attribution in database :db
\endif
\if :new_renewals_schema
CREATE SCHEMA renewals AUTHORIZATION renewals;
\echo created schema renewals in database :db
\endif
\if :new_reporting_schema
-- The services create their views here; the reporting role may only look them up.
CREATE SCHEMA reporting AUTHORIZATION revops;
GRANT USAGE, CREATE ON SCHEMA reporting TO router, attribution, renewals;
GRANT USAGE ON SCHEMA reporting TO reporting;
GRANT CONNECT ON DATABASE :"db" TO reporting;
\echo created schema reporting in database :db
\endif
\if :new_db
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\endif
\connect revops_bench
\set db revops_bench
\set new_db :new_db_bench
SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'router') AS new_router_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'attribution') AS new_attribution_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'renewals') AS new_renewals_schema,
       NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'reporting') AS new_reporting_schema
\gset
\if :new_router_schema
CREATE SCHEMA router AUTHORIZATION router;
\echo created schema router in database :db
\endif
\if :new_attribution_schema
CREATE SCHEMA attribution AUTHORIZATION attribution;
\echo created schema attribution in database :db
\endif
\if :new_renewals_schema
CREATE SCHEMA renewals AUTHORIZATION renewals;
\echo created schema renewals in database :db
\endif
\if :new_reporting_schema
-- The services create their views here; the reporting role may only look them up.
CREATE SCHEMA reporting AUTHORIZATION revops;
GRANT USAGE, CREATE ON SCHEMA reporting TO router, attribution, renewals;
GRANT USAGE ON SCHEMA reporting TO reporting;
GRANT CONNECT ON DATABASE :"db" TO reporting;
\echo created schema reporting in database :db
\endif
\if :new_db
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\endif
