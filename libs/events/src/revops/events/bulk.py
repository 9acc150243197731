"""Many rows in one statement: each column's values travel as one array parameter and
Postgres unnests them back into rows.

A batch is written in one statement per table instead of one execution per row, and the
statement's text is the same for any number of rows, so asyncpg reuses its prepared form.
JSON and JSONB values travel as text (one `text[]`) and are cast by Postgres.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Table,
    TableValuedAlias,
    Text,
    Update,
    bindparam,
    cast,
    column,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.types import TypeEngine


def _is_json(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, JSON)  # JSONB is a JSON too


def rows(table: Table, names: Sequence[str]) -> TableValuedAlias:
    """`unnest($1::t1[], $2::t2[], ...) AS v(name1, name2, ...)` over `table`'s columns;
    the parameter of column `name` is `v_<name>` (see `arrays`)."""
    return unnest("v", **{n: Text() if _is_json(table, n) else table.c[n].type for n in names})


def unnest(alias: str, **types: TypeEngine[Any]) -> TableValuedAlias:
    """`unnest($1::t1[], ...) AS alias(name1, ...)`; the parameter of column `name` is
    `<alias>_<name>`: pass `{f"{alias}_{name}": [values]}` when executing."""
    arrays = [bindparam(f"{alias}_{n}", type_=ARRAY(t)) for n, t in types.items()]
    return (
        func.unnest(*arrays)
        .table_valued(*(column(n, t) for n, t in types.items()))
        .render_derived(name=alias)
    )


def value(table: Table, unnested: TableValuedAlias, name: str) -> ColumnElement[Any]:
    """Column ``name`` of ``unnested`` as ``table`` stores it (JSON cast back from text)."""
    value: ColumnElement[Any] = unnested.c[name]
    return cast(value, table.c[name].type) if _is_json(table, name) else value


@cache
def insert(table: Table, names: tuple[str, ...]) -> Insert:
    """INSERT INTO table (names) SELECT ... FROM unnest(...): add ON CONFLICT as needed."""
    unnested = rows(table, names)
    return pg_insert(table).from_select(
        list(names), select(*(value(table, unnested, n) for n in names))
    )


@cache
def upsert(table: Table, names: tuple[str, ...], key: str = "id") -> Insert:
    """`insert` that, for a row whose ``key`` exists, writes the row's other columns over
    the stored ones. The rows of one call must have distinct keys (Postgres refuses to
    update one row twice in a statement)."""
    statement = insert(table, names)
    return statement.on_conflict_do_update(
        index_elements=[key],
        set_={n: statement.excluded[n] for n in names if n != key},
    )


@cache
def update_by_key(table: Table, key: str, names: tuple[str, ...]) -> Update:
    """UPDATE table SET names... FROM unnest(...) WHERE table.key = rows.key."""
    unnested = rows(table, (key, *names))
    return (
        update(table)
        .where(table.c[key] == unnested.c[key])
        .values({n: value(table, unnested, n) for n in names})
    )


def arrays(
    table: Table, names: Sequence[str], records: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """The parameters of `rows(table, names)` for these records."""
    params = {}
    for name in names:
        values = [record[name] for record in records]
        if _is_json(table, name):
            values = [None if v is None else json.dumps(v) for v in values]
        params[f"v_{name}"] = values
    return params
