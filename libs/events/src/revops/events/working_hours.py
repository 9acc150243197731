"""A rep's working hours as the reps API takes them and the ``rep.changed`` event carries
them: a time zone, shifts on the rep's wall clock, holidays."""

from __future__ import annotations

from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    # As the catalogue's payloads: consumers ignore fields they do not know yet.
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Shift(_Model):
    """A shift on the rep's wall clock; an ``end`` before ``start`` crosses midnight (it
    belongs to the day it starts on), ``24:00`` is the end of the day."""

    days: list[Weekday] = Field(
        min_length=1, max_length=7, description="the weekdays the shift starts on"
    )
    start: str = Field(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        examples=["09:00"],
        description="local time the shift starts, HH:MM (on shift from this minute)",
    )
    end: str = Field(
        pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
        examples=["17:30"],
        description="local time the shift ends, HH:MM (off shift from this minute); before "
        "the start: the next day; 24:00: midnight",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Shift:
        if self.start == self.end:
            raise ValueError(f"shift {self.start}-{self.end} starts and ends at the same minute")
        return self


class WorkingHours(_Model):
    """When a rep is on shift: outside it the rotation passes them over (they keep their
    place), as for a pause."""

    time_zone: str = Field(
        max_length=64, examples=["Europe/Berlin"], description="the rep's IANA time zone"
    )
    shifts: list[Shift] = Field(min_length=1, max_length=50, description="the weekly shifts")
    holidays: list[date] = Field(
        default_factory=list, max_length=1000, description="local dates no shift starts on"
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {name!r} (an IANA name: Europe/Berlin)") from e
        return name
