"""The reporting schema: stable, documented views for BI tools (docs/REPORTING.md).

Postgres' setup (deploy/local/postgres-init.sql) makes the ``reporting`` role, which may
log in and read, and the ``reporting`` schema, in which each service may create views.
Each service's migrations create its own views there: a view is owned by the service's
role, so it reads that service's tables with the service's rights, while the
``reporting`` role is granted SELECT on the views and nothing else (no right on any
service's schema, so not one of their tables).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from alembic import op
from sqlalchemy import text

log = logging.getLogger(__name__)

SCHEMA = "reporting"
ROLE = "reporting"

_READY = text(
    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :role)"
    " AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :schema)"
    " AND has_schema_privilege(:schema, 'CREATE')"
)


def reporting_ready() -> bool:
    """Whether the Postgres setup made the role and the schema (and lets us create in it)."""
    return bool(op.get_bind().execute(_READY, {"role": ROLE, "schema": SCHEMA}).scalar())


def create_views(views: Mapping[str, str]) -> None:
    """In a migration: each view ``reporting.<name>`` as ``SELECT ...``, readable by the
    reporting role. Where the setup has not made the schema and role (a database set up
    before they existed), nothing is created and the log says how to get them."""
    if not reporting_ready():
        log.warning(
            "no reporting views: the reporting role or schema is missing; run "
            "deploy/local/postgres-init.sql as a superuser (docs/REPORTING.md)"
        )
        return
    for name, query in views.items():
        op.execute(f"CREATE VIEW {SCHEMA}.{name} AS {query}")
        op.execute(f"COMMENT ON VIEW {SCHEMA}.{name} IS 'see docs/REPORTING.md'")
        op.execute(f"GRANT SELECT ON {SCHEMA}.{name} TO {ROLE}")


def drop_views(names: list[str]) -> None:
    for name in names:
        op.execute(f"DROP VIEW IF EXISTS {SCHEMA}.{name}")
