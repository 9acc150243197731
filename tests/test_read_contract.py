"""The read contract (docs/API.md) over every service's OpenAPI document: typed answers,
one list envelope with a total, money as strings, a description on every field, a
documented 400 for every JSON body. Every route and field follows it: none is excepted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from fastapi import FastAPI

OPERATIONS = {"/metrics"}  # Prometheus' text format, not JSON
MONEY_WORDS = ("amount", "iacv")  # a "credit" is a share, not money
Document = dict[str, Any]


def _builders() -> dict[str, Callable[[], FastAPI]]:
    from revops.attribution.main import build_app as attribution
    from revops.ingest.main import build_app as ingest
    from revops.renewals.main import build_app as renewals
    from revops.router.main import build_app as router

    return {"ingest": ingest, "router": router, "attribution": attribution, "renewals": renewals}


@cache
def documents() -> dict[str, Document]:
    return {name: build().openapi() for name, build in _builders().items()}


def resolve(document: Document, schema: Document) -> Document:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def routes(document: Document) -> Iterator[tuple[str, str, Document]]:
    for path, methods in document["paths"].items():
        if path in OPERATIONS:
            continue
        for method, operation in methods.items():
            yield method.upper(), path, operation


def answer_schema(operation: Document) -> Document | None:
    for status in ("200", "201"):
        content = operation.get("responses", {}).get(status, {}).get("content", {})
        if "application/json" in content:
            return dict(content["application/json"].get("schema", {}))
    return None


def typed(document: Document, schema: Document) -> bool:
    schema = resolve(document, schema)
    if not schema:
        return False
    if schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        return bool(schema.get("properties")) or (isinstance(extra, dict) and bool(extra))
    return True


def route_violations(service: str, document: Document) -> Iterator[str]:
    for method, path, operation in routes(document):
        where = f"{service} {method} {path}"
        schema = answer_schema(operation)
        if schema is not None and not typed(document, schema):
            yield f"{where}: no typed answer"
        if method == "GET" and schema is not None:
            shape = resolve(document, schema)
            if shape.get("type") == "array":
                yield f"{where}: a list without the envelope (items, total)"
            elif "items" in shape.get("properties", {}) and "total" not in shape["properties"]:
                yield f"{where}: a list envelope without its total"
        body = operation.get("requestBody", {}).get("content", {})
        if "application/json" in body and "400" not in operation.get("responses", {}):
            yield f"{where}: a JSON body without a documented 400"


def _is_number(schema: Document) -> bool:
    kinds = [schema, *schema.get("anyOf", [])]
    return any(kind.get("type") in ("number", "integer") and "count" not in kind for kind in kinds)


def field_violations(service: str, document: Document) -> Iterator[str]:
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if name in ("HTTPValidationError", "ValidationError"):
            continue  # FastAPI's own 422 body
        for field, spec in schema.get("properties", {}).items():
            where = f"{service} {name}.{field}"
            if not spec.get("description"):
                yield f"{where}: no description"
            if any(word in field for word in MONEY_WORDS) and _is_number(spec):
                yield f"{where}: money as a number"


def violations() -> set[str]:
    found: set[str] = set()
    for service, document in documents().items():
        found.update(route_violations(service, document))
        found.update(field_violations(service, document))
    return found


def test_every_service_follows_the_read_contract() -> None:
    assert sorted(violations()) == [], "routes or fields that break the read contract"


def test_the_checks_see_what_they_look_for() -> None:
    """The rules find a bare list, an untyped answer, a float amount, a missing
    description and a body without its 400, and pass a conforming route."""
    document: Document = {
        "paths": {
            "/bare": {"get": {"responses": {"200": _json({"type": "array", "items": {}})}}},
            "/loose": {"get": {"responses": {"200": _json({"type": "object"})}}},
            "/page": {
                "get": {"responses": {"200": _json({"$ref": "#/components/schemas/Page"})}},
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                    "responses": {"201": _json({"$ref": "#/components/schemas/Page"})},
                },
            },
        },
        "components": {
            "schemas": {
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "description": "the page"},
                        "total": {"type": "integer", "description": "all of them"},
                        "amount": {"type": "number"},
                    },
                }
            }
        },
    }
    found = set(route_violations("svc", document)) | set(field_violations("svc", document))
    assert found == {
        "svc GET /bare: a list without the envelope (items, total)",
        "svc GET /loose: no typed answer",
        "svc POST /page: a JSON body without a documented 400",
        "svc Page.amount: no description",
        "svc Page.amount: money as a number",
    }


def _json(schema: Document) -> Document:
    return {"content": {"application/json": {"schema": schema}}}
