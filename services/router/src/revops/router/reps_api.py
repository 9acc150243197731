"""The reps API's bodies: what a rep change may carry and what the API answers.

Salesforce ids are compared as text everywhere downstream, in their 18-character form
(what the API and every event carry): a 15-character id given here (copied from the URL
of a record, or a report) is turned into it. ``salesforce_user_id`` always is one; a
rep's own id, or its paired SDR's, when it is a Salesforce User's (15 characters from
``005``), as the roster sync makes them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import Row

from revops.events.crm import salesforce_id18
from revops.events.service import StoredText
from revops.router import models as m
from revops.router.domain.reps import Region, Role
from revops.router.shifts import WorkingHoursField, WorkingHoursOut

_ID15 = re.compile(r"^[A-Za-z0-9]{15}$")
_USER_ID15 = re.compile(r"^005[A-Za-z0-9]{12}$")


def salesforce_user_id18(value: Any) -> Any:
    """A 15-character Salesforce id in its 18-character form; anything else as given."""
    return salesforce_id18(value) if isinstance(value, str) and _ID15.match(value) else value


def rep_key(value: Any) -> Any:
    """A rep id that is a Salesforce User's 15-character id, in its 18-character form."""
    if isinstance(value, str) and _USER_ID15.match(value.strip()):
        return salesforce_id18(value.strip())
    return value


SAFE_ID = r"^[A-Za-z0-9_.:-]+$"
# What each field means, the same whether a change sets it or a new rep starts with it.
NAME = "the rep's name"
ROLE = "SDR or AE"
REGION = "AMER, EMEA or APAC: the rotation the rep is in; null: none"
CERTIFIED = "passed the demo certification (needed to rotate)"
CONSULTANT = "a consultant: never in a rotation"
ACTIVE = "works leads at all"
PAUSED = "takes no new turns for now"
OUT_OF_OFFICE = "away: takes no new turns"
WEIGHT = "turns per round of the rotation (0: none)"


class RepFields(WorkingHoursField):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: StoredText | None = Field(default=None, max_length=200, description=NAME)
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$",
        description="the rep's email; null: none",
    )
    role: Role | None = Field(default=None, description=ROLE)
    region: Region | None = Field(default=None, description=REGION)
    certified: bool | None = Field(default=None, description=CERTIFIED)
    consultant: bool | None = Field(default=None, description=CONSULTANT)
    active: bool | None = Field(default=None, description=ACTIVE)
    paused: bool | None = Field(default=None, description=PAUSED)
    out_of_office: bool | None = Field(default=None, description=OUT_OF_OFFICE)
    weight: int | None = Field(default=None, ge=0, le=100, description=WEIGHT)
    daily_cap: int | None = Field(  # a 32-bit column
        default=None, ge=0, le=2**31 - 1, description="the most leads a day; null: no cap"
    )
    paired_sdr_id: StoredText | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="an AE's SDR, credited with the opportunities the AE is given; null: none",
    )
    # The rep's user in each CRM: the owner written back to Salesforce / HubSpot.
    salesforce_user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=SAFE_ID,
        description="the rep's Salesforce User id (15 characters are made 18): the owner "
        "written back to Salesforce",
    )
    hubspot_owner_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=SAFE_ID,
        description="the rep's HubSpot owner id: the owner written back to HubSpot",
    )

    @field_validator("salesforce_user_id", mode="after")
    @classmethod
    def salesforce_id_18(cls, value: str | None) -> str | None:
        result: str | None = salesforce_user_id18(value)
        return result

    @field_validator("paired_sdr_id", mode="after")
    @classmethod
    def paired_rep_key(cls, value: str | None) -> str | None:
        result: str | None = rep_key(value)
        return result


# A PATCH may set to null only what a rep may lack (email, region, daily cap, paired SDR).
REP_FIELDS_NEVER_NULL = frozenset(
    column.name for column in m.reps.columns if not column.nullable
) & frozenset(RepFields.model_fields)


class RepCreate(RepFields):
    id: str = Field(
        min_length=1,
        max_length=64,
        pattern=SAFE_ID,
        description="the rep's id (the CRM user id, so events can name the rep)",
    )
    name: StoredText = Field(default="", max_length=200, description=NAME)
    role: Role = Field(description=ROLE)
    certified: bool = Field(default=False, description=CERTIFIED)
    consultant: bool = Field(default=False, description=CONSULTANT)
    active: bool = Field(default=True, description=ACTIVE)
    paused: bool = Field(default=False, description=PAUSED)
    out_of_office: bool = Field(default=False, description=OUT_OF_OFFICE)
    weight: int = Field(default=1, ge=0, le=100, description=WEIGHT)

    @field_validator("role", mode="before")
    @classmethod
    def upper_role(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("id", mode="after")
    @classmethod
    def id_key(cls, value: str) -> str:
        result: str = rep_key(value)
        return result


class RepOut(WorkingHoursOut):
    id: str = Field(description="the rep's id (the CRM user id, so events can name the rep)")
    name: str = Field(description="the rep's name")
    email: str | None = Field(description="the rep's email")
    role: str = Field(description="SDR or AE")
    region: str | None = Field(description="AMER, EMEA or APAC; null: no rotation")
    certified: bool = Field(description="passed the demo certification (needed to rotate)")
    consultant: bool = Field(description="a consultant: never in a rotation")
    active: bool = Field(description="works leads at all")
    paused: bool = Field(description="takes no new turns for now")
    out_of_office: bool = Field(description="away: takes no new turns")
    weight: int = Field(description="turns per round of the rotation (0: none)")
    daily_cap: int | None = Field(description="the most leads a day; null: no cap")
    paired_sdr_id: str | None = Field(description="an AE's SDR")
    salesforce_user_id: str | None = Field(description="the rep's Salesforce user id")
    hubspot_owner_id: str | None = Field(description="the rep's HubSpot owner id")
    position: int | None = Field(
        description="the rotation order (the order reps were created); null in the answer "
        "to a create, until the router has applied the new rep"
    )


def rep_out(row: Row[Any]) -> RepOut:
    return RepOut.model_validate(row._mapping, from_attributes=False)
