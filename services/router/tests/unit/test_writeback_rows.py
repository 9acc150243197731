"""The write-back list's index and query name the destinations the senders use."""

from __future__ import annotations

from revops.router import models as m
from revops.router.context import HUBSPOT_OWNER, SALESFORCE_OWNER


def test_the_write_back_rows_are_the_owner_destinations() -> None:
    assert m.WRITEBACK_DESTINATIONS == (HUBSPOT_OWNER, SALESFORCE_OWNER)
    written = ", ".join(f"'{name}'" for name in m.WRITEBACK_DESTINATIONS)
    assert str(m.WRITEBACKS) == f"destination IN ({written})"
