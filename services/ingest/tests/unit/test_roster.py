"""The roster's sources read into reps as the router's API takes them, and only what
differs is sent."""

from __future__ import annotations

import pytest

from revops.ingest.domain.roster import (
    REP_COLUMNS,
    RosterError,
    UserFields,
    hubspot_owner_ids,
    rep_change,
    rep_from_csv,
    rep_from_salesforce_user,
    rep_to_csv,
)


def test_a_csv_row_becomes_a_rep_and_empty_cells_set_nothing() -> None:
    row = {
        "id": "005A0000006Vm9r",
        "name": " Ada ",
        "role": "sdr",
        "region": "emea",
        "certified": "yes",
        "weight": "2",
        "daily_cap": "",
        "salesforce_user_id": "005A0000006Vm9r",
        "hubspot_owner_id": "101",
    }
    rep = rep_from_csv(row, 2)
    assert rep == {
        "id": "005A0000006Vm9r",  # our rep id: kept as written
        "name": "Ada",
        "role": "SDR",
        "region": "EMEA",
        "certified": True,
        "weight": 2,
        "salesforce_user_id": "005A0000006Vm9rIAC",  # compared with CRM owner ids
        "hubspot_owner_id": "101",
    }


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"name": "no id"}, "line 3: id is required"),
        ({"id": "r1", "role": "VP"}, "line 3: role: 'VP' is not one of SDR, AE"),
        ({"id": "r1", "weight": "1.5"}, "line 3: weight: expected a whole number"),
        ({"id": "r1", "active": "maybe"}, "line 3: active: expected true or false"),
        ({"id": "r1", "team": "x"}, "line 3: unknown column(s) team"),
    ],
)
def test_a_bad_csv_row_names_its_line_and_field(row: dict[str, str], message: str) -> None:
    with pytest.raises(RosterError) as refused:
        rep_from_csv(row, 3)
    assert str(refused.value).startswith(message)


def test_export_and_import_round_trip() -> None:
    rep = {
        "id": "r1",
        "name": "Bo",
        "email": "bo@example.com",
        "role": "AE",
        "region": None,
        "certified": False,
        "consultant": True,
        "active": True,
        "paused": False,
        "out_of_office": False,
        "weight": 1,
        "daily_cap": None,
        "paired_sdr_id": None,
        "salesforce_user_id": None,
        "hubspot_owner_id": "7",
        "position": 4,
    }
    row = rep_to_csv(rep)
    assert list(row) == list(REP_COLUMNS)
    back = rep_from_csv(row, 2)
    assert back == {k: v for k, v in rep.items() if v is not None and k != "position"}


FIELDS = UserFields()


def test_a_salesforce_user_with_a_rep_role_is_a_rep_with_the_certified_field_read() -> None:
    user = {
        "Id": "005A0000006Vm9r",
        "Name": "Ada Lovelace",
        "Email": "Ada@Example.com",
        "IsActive": True,
        "Sales_Role__c": "SDR",
        "Region__c": "apac",
        "SDR_Certified__c": True,
        "Is_Consultant__c": False,
    }
    rep = rep_from_salesforce_user(user, FIELDS, 1)
    assert rep == {
        "id": "005A0000006Vm9rIAC",
        "salesforce_user_id": "005A0000006Vm9rIAC",
        "role": "SDR",
        "name": "Ada Lovelace",
        "active": True,
        "email": "ada@example.com",
        "region": "APAC",
        "certified": True,
        "consultant": False,
    }


def test_users_outside_sales_are_not_reps_and_bad_values_are_named() -> None:
    assert rep_from_salesforce_user({"Id": "005x", "Sales_Role__c": None}, FIELDS, 1) is None
    assert rep_from_salesforce_user({"Id": "005x", "Sales_Role__c": "Support"}, FIELDS, 1) is None
    with pytest.raises(RosterError, match="Region__c"):
        rep_from_salesforce_user(
            {"Id": "005x", "Sales_Role__c": "AE", "Region__c": "Mars"}, FIELDS, 1
        )


def test_only_what_differs_is_sent() -> None:
    desired = {"id": "r1", "role": "AE", "name": "Bo"}
    assert rep_change(None, desired) == ("create", desired)
    assert rep_change({"id": "r1", "role": "AE", "name": "Bo", "weight": 1}, desired) is None
    assert rep_change({"id": "r1", "role": "SDR", "name": "Bo"}, desired) == (
        "update",
        {"role": "AE"},
    )


def test_hubspot_owners_match_reps_by_email() -> None:
    reps: list[dict[str, str | None]] = [
        {"id": "r1", "email": "ada@example.com"},
        {"id": "r2", "email": None},
    ]
    owners = [
        {"id": "101", "email": "ADA@example.com"},
        {"id": "102", "email": "nobody@example.com"},
        {"id": "103", "email": "ada@example.com", "archived": True},
    ]
    assert hubspot_owner_ids(owners, reps) == ({"r1": "101"}, ["102 nobody@example.com"])
