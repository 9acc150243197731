"""CRM changes merged field by field, so the result does not depend on arrival order.

A field takes the value of the change that happened last (by its event time, then event
id), wherever and whenever that change arrives: a delayed update of an account's name
does not undo a newer owner change that came first, and replaying the topics in another
interleaving gives the same record. A change that does not carry a field (None) leaves
it alone. Each field's winning stamp is kept beside the record.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import Any

Stamp = tuple[str, str]  # (event time as fixed-width UTC text, event id): sorts by time
_NONE: Stamp = ("", "")


def stamp(occurred_at: datetime, event_id: str) -> Stamp:
    return (occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), event_id)


def stamps_of(stored: Mapping[str, Any] | None) -> dict[str, Stamp]:
    """Stamps as stored (JSON lists) back to tuples."""
    return {name: (str(s[0]), str(s[1])) for name, s in (stored or {}).items()}


def merge_fields(
    record: MutableMapping[str, Any],
    stamps: MutableMapping[str, Stamp],
    change: Mapping[str, Any],
    at: Stamp,
) -> set[str]:
    """Take each field ``change`` carries that is newer than the one ``record`` holds;
    returns the names of the fields taken (the same stamp is the same change: not
    taken again)."""
    taken: set[str] = set()
    for name, value in change.items():
        if value is None or at <= stamps.get(name, _NONE):
            continue
        record[name] = value
        stamps[name] = at
        taken.add(name)
    return taken
