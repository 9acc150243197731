from __future__ import annotations

from datetime import UTC, datetime

import pytest

from revops.events.retry_after import retry_after_s

NOW = datetime(2026, 5, 4, 16, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),  # a wait in the past is no wait
        ("Mon, 04 May 2026 16:00:30 GMT", 30.0),
        ("Mon, 04 May 2026 15:59:00 GMT", 0.0),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None):
    assert retry_after_s(header, NOW) == seconds


def test_without_a_now_an_http_date_counts_from_the_clock():
    waited = retry_after_s("Mon, 04 May 2099 16:00:30 GMT")
    assert waited is not None and waited > 0
