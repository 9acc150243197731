"""Reading the senders' values: times, dates, money, booleans, web sites.

Each reader takes the sender's field name and the event index, so that a bad value is
refused with a message that says where it is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from revops.events.catalogue import E, Model, Source, make_event, normalise_email
from revops.ingest.domain.errors import MalformedEvent

T = TypeVar("T")

# Epoch milliseconds between 1990 and 2200: anything else is not a time HubSpot sent.
_MIN_MS = 631_152_000_000
_MAX_MS = 7_258_118_400_000


def epoch_ms(value: Any, field: str, index: int | None) -> datetime:
    if isinstance(value, bool):
        raise MalformedEvent(field, "expected epoch milliseconds", index)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int | float) or not _MIN_MS <= value <= _MAX_MS:
        raise MalformedEvent(field, f"expected epoch milliseconds, got {_show(value)}", index)
    return datetime.fromtimestamp(value / 1000, UTC)


def iso_datetime(value: Any, field: str, index: int | None) -> datetime:
    """An ISO 8601 time with a zone (Salesforce: 2024-04-02T15:21:09.000Z)."""
    if not isinstance(value, str):
        raise MalformedEvent(field, f"expected an ISO 8601 time, got {_show(value)}", index)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Salesforce writes +0000 in some APIs.
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEvent(field, f"not an ISO 8601 time: {_show(value)}", index) from None
    if parsed.tzinfo is None:
        raise MalformedEvent(field, f"time without a zone: {_show(value)}", index)
    return parsed.astimezone(UTC)


def any_datetime(value: Any, field: str, index: int | None) -> datetime:
    """Epoch milliseconds (number or digits) or an ISO 8601 time."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_ms(value, field, index)
    if isinstance(value, str) and value.strip().isdigit():
        return epoch_ms(value, field, index)
    return iso_datetime(value, field, index)


def iso_date(value: Any, field: str, index: int | None) -> date:
    """A date: 2024-06-28, or an epoch-ms midnight as HubSpot sends date properties."""
    if (isinstance(value, str) and value.strip().isdigit()) or isinstance(value, int):
        return epoch_ms(value, field, index).date()
    if not isinstance(value, str):
        raise MalformedEvent(field, f"expected a date, got {_show(value)}", index)
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return iso_datetime(text, field, index).date()
    except ValueError:
        raise MalformedEvent(field, f"not a date: {_show(value)}", index) from None


def money(value: Any, field: str, index: int | None) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedEvent(field, f"expected an amount, got {_show(value)}", index)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise MalformedEvent(field, f"not an amount: {_show(value)}", index) from None
    if not amount.is_finite():
        raise MalformedEvent(field, f"not an amount: {_show(value)}", index)
    return amount


_TRUE = {"true", "1", "yes", "y", "on", "checked"}
_FALSE = {"false", "0", "no", "n", "off", "unchecked", ""}


def boolean(value: Any, field: str, index: int | None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise MalformedEvent(field, f"expected true or false, got {_show(value)}", index)


def text(value: Any, field: str, index: int | None, *, max_length: int = 1000) -> str | None:
    """A string value; numbers are accepted as their text (HubSpot ids are numbers)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedEvent(field, f"expected text, got {_show(value)}", index)
    result = str(value).strip()
    if len(result) > max_length:
        raise MalformedEvent(field, f"longer than {max_length} characters", index)
    return result or None


def required_text(value: Any, field: str, index: int | None) -> str:
    result = text(value, field, index, max_length=200)
    if result is None:
        raise MalformedEvent(field, "is required", index)
    return result


def email(value: Any, field: str, index: int | None) -> str | None:
    raw = text(value, field, index, max_length=254)
    if raw is None:
        return None
    try:
        return normalise_email(raw)
    except ValueError as exc:
        raise MalformedEvent(field, str(exc), index) from None


_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def domains_of_website(website: str | None) -> list[str]:
    """The host of a web site as a CRM user typed it ("www.Example.com/about",
    "https://example.com"), lower-case and without ``www.``; [] when it names no host
    (a typo in a CRM must not block the sender's whole message)."""
    if not website:
        return []
    raw = website.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        host = (urlsplit(raw).hostname or "").rstrip(".")
    except ValueError:
        return []
    if host.startswith("www."):
        host = host[4:]
    return [host] if _HOST.match(host) else []


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def build_event(
    event_class: type[E],
    *,
    id: str,
    source: Source,
    occurred_at: datetime,
    received_at: datetime,
    payload: Callable[[], Model],
    index: int | None,
) -> E:
    """Build the payload and the event; a value the catalogue refuses names its field."""
    try:
        return make_event(
            event_class,
            id=id,
            source=source,
            occurred_at=occurred_at,
            received_at=received_at,
            payload=payload(),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "payload"
        raise MalformedEvent(field, first["msg"], index) from None


def pick(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in mapping and mapping[name] is not None:
            return mapping[name]
    return None


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
