"""Numbers, money, times and durations as a sales leader reads them.

Each function takes what the APIs send (a number, a decimal string, an RFC 3339 time
ending in ``Z`` or ``+00:00``, a date) and never raises: a value it cannot read is shown
as it came, and a missing one as a dash.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

DASH = "\u2014"
MINUS = "\u2212"


def to_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def to_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def count(value: Any) -> str:
    """1234 -> "1,234"."""
    number = to_decimal(value)
    if number is None:
        return DASH if value is None else str(value)
    return f"{number:,.0f}".replace("-", MINUS)


def money(value: Any) -> str:
    """An amount in whole units with thousands separators: "1,234,568"."""
    return count(value)


def compact(value: Any) -> str:
    """A short figure for charts: 950, 12.5K, 1.2M, 3.4B."""
    number = to_decimal(value)
    if number is None:
        return DASH
    sign = MINUS if number < 0 else ""
    size = abs(number)
    for limit, suffix in ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(1000), "K")):
        if size >= limit:
            scaled = size / limit
            text = f"{scaled:.1f}".removesuffix(".0") if scaled < 100 else f"{scaled:.0f}"
            return f"{sign}{text}{suffix}"
    text = f"{size:.1f}".removesuffix(".0") if size < 10 else f"{size:.0f}"
    return f"{sign}{text}"


def percent(value: Any, digits: int = 1) -> str:
    """A share (0.125) as "12.5%"."""
    number = to_decimal(value)
    if number is None:
        return DASH
    return f"{number * 100:.{digits}f}%".replace("-", MINUS)


def change(now: Any, before: Any) -> str:
    """Week-over-week change: "+12.5%", "-3.0%" (a real minus sign), "no change", "new"
    (from nothing)."""
    current, previous = to_decimal(now), to_decimal(before)
    if current is None or previous is None:
        return DASH
    if previous == 0:
        return "no change" if current == 0 else "new"
    ratio = (current - previous) / abs(previous)
    if ratio == 0:
        return "no change"
    sign = "+" if ratio > 0 else MINUS
    return f"{sign}{abs(ratio) * 100:.1f}%"


def day(value: Any) -> str:
    """ "2026-12-03" -> "3 Dec 2026"."""
    found = to_date(value)
    if found is None:
        return DASH if value in (None, "") else str(value)
    return f"{found.day} {found:%b %Y}"


def when(value: Any) -> str:
    """An RFC 3339 time -> "3 Dec 2026, 14:05 UTC"."""
    moment = to_datetime(value)
    if moment is None:
        return DASH if value in (None, "") else str(value)
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def duration(seconds: Any) -> str:
    """Seconds -> "45 s", "12 min", "5 h 20 min", "3 d 4 h"."""
    number = to_decimal(seconds)
    if number is None:
        return DASH
    total = int(abs(number))
    sign = MINUS if number < 0 else ""
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h" if hours else f"{days} d"
    elif hours:
        text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    elif minutes:
        text = f"{minutes} min"
    else:
        text = f"{secs} s"
    return sign + text


def label(value: Any) -> str:
    """An API key as words: "round_robin" -> "Round robin", None -> "(none)"."""
    if value is None or value == "":
        return "(none)"
    text = str(value).replace("_", " ")
    return text[:1].upper() + text[1:]


FILTERS = {
    "count": count,
    "money": money,
    "compact": compact,
    "percent": percent,
    "day": day,
    "when": when,
    "duration": duration,
    "label": label,
}
