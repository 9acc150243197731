"""The reps API takes Salesforce ids in either form and keeps the 18-character one, the
form every event and the write-back compare; the router reads only the shared CRM
settings' names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from revops.router.reps_api import RepCreate, RepFields, rep_key
from revops.router.settings import RouterSettings

USER_15 = "0055g00000Ab1Cd"
USER_18 = "0055g00000Ab1CdAAJ"


def test_a_15_character_user_id_is_stored_in_its_18_character_form() -> None:
    rep = RepCreate(id=USER_15, role="SDR", salesforce_user_id=USER_15, paired_sdr_id=USER_15)
    assert (rep.id, rep.salesforce_user_id, rep.paired_sdr_id) == (USER_18, USER_18, USER_18)
    assert RepFields(salesforce_user_id=USER_15).salesforce_user_id == USER_18


def test_18_character_and_other_ids_are_kept_as_given() -> None:
    rep = RepCreate(id="rep-ana", role="AE", salesforce_user_id=USER_18, hubspot_owner_id="1234")
    assert (rep.id, rep.salesforce_user_id, rep.hubspot_owner_id) == ("rep-ana", USER_18, "1234")
    # 15 characters but not a User's id (no 005): a rep id of the team's own.
    assert rep_key("abcdefghijklmno") == "abcdefghijklmno"
    assert rep_key(USER_15) == USER_18 and rep_key(USER_18) == USER_18


def test_a_malformed_user_id_is_still_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        RepFields(salesforce_user_id="005 with spaces")
    assert "salesforce_user_id" in str(refused.value)


def test_the_old_token_names_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN", "old-hubspot")
    monkeypatch.setenv("SALESFORCE_TOKEN", "old-salesforce")
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("SALESFORCE_ACCESS_TOKEN", raising=False)
    settings = RouterSettings(_env_file=None)
    assert settings.hubspot_access_token is None
    assert settings.salesforce_access_token is None
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "new-hubspot")
    settings = RouterSettings(_env_file=None)
    assert settings.hubspot_access_token is not None
    assert settings.hubspot_access_token.get_secret_value() == "new-hubspot"
