"""What a console user types, checked before any service is called."""

from __future__ import annotations

from datetime import date

import pytest

from revops.console.inputs import (
    AttributionQuery,
    InputRefused,
    NewRep,
    RenewalsQuery,
    RepChange,
    RoutingQuery,
    parse,
)


def test_an_empty_box_is_not_given():
    assert parse(RepChange, {"action": "daily_cap", "daily_cap": "  "}).daily_cap is None
    assert parse(RoutingQuery, {"leads": "", "breach_days": ""}) == RoutingQuery()
    query = parse(AttributionQuery, {"from": "2026-11-01", "to": "", "qualified_only": "on"})
    assert (query.from_, query.to, query.qualified_only) == (date(2026, 11, 1), None, True)


@pytest.mark.parametrize(
    ("model", "values", "field", "message"),
    [
        (RepChange, {"action": "weight", "weight": "-1"}, "weight", "greater than or equal to 0"),
        (RepChange, {"action": "daily_cap", "daily_cap": "2.5"}, "daily_cap", "whole number"),
        (RepChange, {}, "action", "is required"),
        (AttributionQuery, {"from": "12/03/2026"}, "from", "must be a date like 2026-12-03"),
        (AttributionQuery, {"model": "u-shaped"}, "model", "must be one of"),
        (NewRep, {"id": "a/b", "name": "A", "role": "AE"}, "id", "not allowed"),
        (NewRep, {"id": "a", "name": "A", "role": "AE", "region": "MARS"}, "region", "one of"),
        (NewRep, {"id": "a", "name": "A\x00", "role": "AE"}, "name", "not allowed"),
        (RenewalsQuery, {"category": "commit"}, "category", "must be one of"),
        (RenewalsQuery, {"status": "closed"}, "status", "must be one of"),
        (RenewalsQuery, {"accounts_from": "1e12"}, "accounts_from", "whole number"),
        (AttributionQuery, {"campaigns_from": "-25"}, "campaigns_from", "greater than"),
    ],
)
def test_a_refusal_names_the_field(model, values, field, message):
    with pytest.raises(InputRefused) as refused:
        parse(model, values)
    assert refused.value.field == field
    assert message in refused.value.message
