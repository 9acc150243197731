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
-- Only the "created ..." lines below are printed (no command tags, no headers): each
-- \gexec query returns, for every thing still missing, the statements that make it and
-- a SELECT of the line that says so (NULL cells are skipped).
\set QUIET on
\pset tuples_only on
\pset format unaligned

-- Roles. revops is the admin role (it owns the databases); reporting is for BI tools.
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER %s NOCREATEROLE', name, name,
              CASE WHEN name = 'revops' THEN 'CREATEDB' ELSE 'NOCREATEDB' END),
       format('SELECT %L', format('created role %s (password %s)', name, name))
FROM unnest(ARRAY['revops', 'router', 'attribution', 'renewals', 'reporting'])
     WITH ORDINALITY AS r(name, n)
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name)
ORDER BY n
\gexec

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
-- Only our roles may connect to one this file creates. Which are new is noted first: only
-- in those does the public schema lose its CREATE grant (below).
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'revops') AS new_db_revops,
       NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'revops_test') AS new_db_test,
       NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'revops_bench') AS new_db_bench
\gset
SELECT format('CREATE DATABASE %I OWNER revops', name),
       format('REVOKE ALL ON DATABASE %I FROM PUBLIC', name),
       format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO router, attribution, renewals', name),
       format('GRANT CONNECT ON DATABASE %I TO reporting', name),
       format('SELECT %L', format('created database %s (owner revops)', name))
FROM unnest(ARRAY['revops', 'revops_test', 'revops_bench']) WITH ORDINALITY AS d(name, n)
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = name)
ORDER BY n
\gexec

-- The same schemas in each database, each owned by its service's role. A schema grants
-- nothing to anyone but its owner, so router cannot even look up a table in
-- attribution's schema. The services create their views in `reporting`; the reporting
-- role may only look them up. In a database created above, nothing of ours belongs in
-- public (kept readable for extensions only). One query, kept in :create_schemas and run
-- in each database in turn.
SELECT $query$
SELECT format('CREATE SCHEMA %I AUTHORIZATION %I', name, owner),
       CASE WHEN name = 'reporting' THEN
         'GRANT USAGE, CREATE ON SCHEMA reporting TO router, attribution, renewals' END,
       CASE WHEN name = 'reporting' THEN 'GRANT USAGE ON SCHEMA reporting TO reporting' END,
       CASE WHEN name = 'reporting' THEN
         format('GRANT CONNECT ON DATABASE %I TO reporting', current_database()) END,
       format('SELECT %L', format('created schema %s in database %s', name, current_database()))
FROM (VALUES (1, 'router', 'router'), (2, 'attribution', 'attribution'),
             (3, 'renewals', 'renewals'), (4, 'reporting', 'revops')) AS s(n, name, owner)
WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = name)
ORDER BY n
$query$ AS create_schemas
\gset

\connect revops
:create_schemas
\gexec
\if :new_db_revops
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\endif

\connect revops_test
:create_schemas
\gexec
\if :new_db_test
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\endif

\connect revops_bench
:create_schemas
\gexec
\if :new_db_bench
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\endif
