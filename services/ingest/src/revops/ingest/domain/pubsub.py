"""A Salesforce Pub/Sub API event, decoded from Avro -> the CometD message the change-event
webhook takes, so both paths go through one normaliser and give the same event ids.

What differs between the two (Salesforce documents it) and how it is bridged:
- Pub/Sub carries every field of the object, unchanged ones as null; CometD only the
  changed ones. Null values are dropped, and the fields the header names in
  ``nulledFields`` come back as null: a cleared value stays a fact.
- ``changedFields``, ``nulledFields`` and ``diffFields`` are bitmaps over the schema's
  field positions (``0x...`` for the top level, ``<position>-0x...`` for the parts of a
  compound field): turned into field names (``BillingAddress.City`` for a part).
- Times are epoch milliseconds (or Avro timestamps), dates days: written as ISO 8601.
- Compound fields (``Name``, ``BillingAddress``, ...) are records: their parts are also
  given the flat names the normaliser reads (``FirstName``, ``BillingCountry``).
- A platform event's ``EventUuid`` is a payload field; CometD has it under ``event``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from revops.ingest.domain.errors import MalformedEvent

HEADER = "ChangeEventHeader"
BITMAP_FIELDS = ("changedFields", "nulledFields", "diffFields")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cometd_message(
    decoded: Mapping[str, Any],
    schema: Mapping[str, Any],
    *,
    topic: str,
    schema_id: str,
    replay_id: bytes,
) -> dict[str, Any]:
    """The event as the CometD JSON ``{"channel", "data": {"schema", "payload", "event"}}``.
    ``schema`` is the Avro schema the event was written with (its JSON, parsed)."""
    fields = _record_fields(schema)
    payload: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        value = decoded.get(name)
        if name == HEADER or value is None:
            continue
        payload[name] = _json_value(value, _is_epoch_ms(field["type"]))
        if isinstance(value, Mapping):
            payload.update(_flat_parts(name, payload[name]))
    header = decoded.get(HEADER)
    if isinstance(header, Mapping):
        payload[HEADER] = _header(header, fields, payload)
    event: dict[str, Any] = {"replayId": replay_id.hex()}
    if isinstance(payload.get("EventUuid"), str):
        event["EventUuid"] = payload["EventUuid"]
    return {"channel": topic, "data": {"schema": schema_id, "payload": payload, "event": event}}


def _header(
    header: Mapping[str, Any], fields: Sequence[Mapping[str, Any]], payload: dict[str, Any]
) -> dict[str, Any]:
    result = {name: _json_value(value, False) for name, value in header.items()}
    for name in BITMAP_FIELDS:
        result[name] = field_names(header.get(name) or [], fields, f"{HEADER}.{name}")
    for nulled in result["nulledFields"]:
        parent, _, part = nulled.partition(".")
        if not part:
            payload.setdefault(parent, None)
    return result


def field_names(
    bitmaps: Sequence[Any], fields: Sequence[Mapping[str, Any]], where: str
) -> list[str]:
    """The names a bitmap list stands for: bit i of ``0x...`` is the schema's field i;
    ``p-0x...`` counts over the parts of the compound field at position p."""
    if not isinstance(bitmaps, list | tuple):
        raise MalformedEvent(where, f"expected a list of bitmaps, got {bitmaps!r}")
    names: list[str] = []
    for entry in bitmaps:
        if not isinstance(entry, str):
            raise MalformedEvent(where, f"expected a bitmap string, got {entry!r}")
        position, _, bitmap = entry.rpartition("-")
        over, prefix = fields, ""
        if position:
            parent = _field_at(fields, position, entry, where)
            over, prefix = _record_fields(parent["type"]), parent["name"] + "."
        names.extend(
            prefix + _field_at(over, str(bit), entry, where)["name"] for bit in _bits(bitmap, where)
        )
    return names


def _bits(bitmap: str, where: str) -> Iterator[int]:
    if not bitmap.lower().startswith("0x"):
        raise MalformedEvent(where, f"not a field bitmap: {bitmap!r}")
    try:
        value = int(bitmap, 16)
    except ValueError:
        raise MalformedEvent(where, f"not a field bitmap: {bitmap!r}") from None
    return (bit for bit in range(value.bit_length()) if value >> bit & 1)


def _field_at(
    fields: Sequence[Mapping[str, Any]], position: str, entry: str, where: str
) -> Mapping[str, Any]:
    if not position.isdigit() or int(position) >= len(fields):
        raise MalformedEvent(
            where, f"{entry!r} names field {position}, the schema has {len(fields)}"
        )
    return fields[int(position)]


def _record_fields(schema: Any) -> list[Mapping[str, Any]]:
    """The fields of a record schema, or of the record in a nullable union."""
    if isinstance(schema, list):
        for branch in schema:
            if isinstance(branch, Mapping) and branch.get("type") == "record":
                return list(branch["fields"])
    if isinstance(schema, Mapping) and schema.get("type") == "record":
        return list(schema["fields"])
    raise MalformedEvent("schema", f"expected a record, got {str(schema)[:80]}")


def _is_epoch_ms(schema: Any) -> bool:
    """A plain ``long`` field is a time in epoch milliseconds: Salesforce has no other
    long-valued field (numbers are doubles, integers ints)."""
    branches = schema if isinstance(schema, list) else [schema]
    return any(b == "long" or (isinstance(b, Mapping) and b == {"type": "long"}) for b in branches)


def _json_value(value: Any, epoch_ms: bool) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and epoch_ms:
        return _iso(_EPOCH + timedelta(milliseconds=value))
    if isinstance(value, Mapping):
        return {k: _json_value(v, False) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_json_value(v, False) for v in value]
    return value


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _flat_parts(name: str, parts: Mapping[str, Any]) -> dict[str, Any]:
    """``Name`` -> FirstName, LastName; ``<X>Address`` -> <X>Street, <X>Country, ...: the
    names of the same values on the object itself."""
    if name == "Name":
        prefix = ""
    elif name.endswith("Address"):
        prefix = name.removesuffix("Address")
    else:
        return {}
    return {prefix + part: value for part, value in parts.items()}
