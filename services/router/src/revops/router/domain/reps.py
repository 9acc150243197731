"""Reps as the routing rules see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from revops.router.domain.working_hours import WorkingHours, on_shift

Role = Literal["SDR", "AE"]
Region = Literal["AMER", "EMEA", "APAC"]
REGIONS: tuple[Region, ...] = ("AMER", "EMEA", "APAC")


@dataclass(frozen=True)
class Rep:
    id: str  # the CRM user id, so events can name the rep
    role: Role
    region: Region | None = None
    name: str = ""
    active: bool = True
    certified: bool = False  # passed the demo certification: required for any rotation
    consultant: bool = False
    paused: bool = False
    out_of_office: bool = False
    weight: int = 1
    daily_cap: int | None = None
    paired_sdr_id: str | None = None  # only meaningful for an AE
    # The rep's fixed place in the roster (the order reps were added); 0: not known, the
    # order of the list they come in stands for it.
    position: int = 0
    hours: WorkingHours | None = None  # None: on shift around the clock

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"rep {self.id}: weight must be >= 0, got {self.weight}")
        if self.daily_cap is not None and self.daily_cap < 0:
            raise ValueError(f"rep {self.id}: daily_cap must be >= 0, got {self.daily_cap}")

    @property
    def label(self) -> str:
        return f"{self.role} {self.id}"

    def may_claim(self) -> bool:
        """Whether a touch or an opportunity of this rep can give them a lead.

        A rep who left (inactive) cannot; pausing only concerns the rotation.
        """
        return self.active

    def in_rotation(self, role: Role, at: datetime | None = None) -> bool:
        """Whether the rep may take a turn in a rotation of ``role`` (at the instant ``at``:
        on shift then; None: whatever the hour).

        Reps failing this keep their place in the order; they are only skipped.
        """
        return (
            self.role == role
            and self.active
            and self.certified
            and not self.consultant
            and not self.paused
            and not self.out_of_office
            and self.weight > 0
            and (at is None or on_shift(self.hours, at))
        )
