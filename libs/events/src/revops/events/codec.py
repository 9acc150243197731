"""Kafka record <-> event, with orjson."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from revops.events.catalogue import EVENT_ADAPTER, Envelope, Event


class UndecodableEvent(ValueError):
    """A record that is not a valid event of the catalogue (a poison message)."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode_event(event: Envelope) -> bytes:
    return orjson.dumps(event.model_dump(), default=_default)


def decode_event(value: bytes | None) -> Event:
    if value is None:
        raise UndecodableEvent("empty record (tombstone)")
    try:
        return EVENT_ADAPTER.validate_python(orjson.loads(value))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise UndecodableEvent(str(exc)[:2000]) from exc


def event_headers(event: Envelope) -> list[tuple[str, bytes]]:
    return [
        ("event-id", event.id.encode()),
        ("event-type", event.type.encode()),
        ("schema-version", str(event.version).encode()),
    ]
