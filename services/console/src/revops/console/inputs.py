"""What a console user may type, checked before any service is called: a refusal names
the field and says what is wrong (never a 500)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from revops.events.service import MAX_OFFSET

SAFE_ID = r"^[A-Za-z0-9_.:-]+$"
MAX_INT32 = 2**31 - 1
AttributionModel = Literal[
    "first_touch",
    "lead_creation",
    "u_shaped",
    "w_shaped",
    "full_path",
    "linear",
    "last_touch",
    "time_decay",
]
ATTRIBUTION_MODELS: tuple[str, ...] = get_args(AttributionModel)
# The values renewals' lists filter by (its API refuses any other).
ForecastCategory = Literal["Pipeline", "Best Case", "Commit", "Closed", "Omitted"]
OpportunityStatus = Literal["open", "won", "lost"]
AccountTier = Literal["diamond", "pearl", "sapphire", "ruby", "quartz", "none"]
FORECAST_CATEGORIES: tuple[str, ...] = get_args(ForecastCategory)
OPPORTUNITY_STATUSES: tuple[str, ...] = get_args(OpportunityStatus)
ACCOUNT_TIERS: tuple[str, ...] = get_args(AccountTier)
# Where a table's page starts: a row number from 0, as far as the APIs page.
RowOffset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]


class InputRefused(Exception):
    """A value typed into the console that cannot be used, with the field it came in."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _checkbox(value: Any) -> Any:
    return value in ("on", "true", "1", "yes", True)


Checkbox = BeforeValidator(_checkbox)
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=SAFE_ID)]


class Input(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)


class RoutingQuery(Input):
    leads: Annotated[int, Field(ge=1, le=500)] = 50
    breach_days: Annotated[int, Field(ge=1, le=90)] = 7


class AttributionQuery(Input):
    from_: Annotated[date | None, Field(alias="from")] = None
    to: date | None = None
    qualified_only: Annotated[bool, Checkbox] = False
    model: AttributionModel | None = None
    campaigns_from: RowOffset = 0


class RenewalsQuery(Input):
    as_of: date | None = None
    weeks: Annotated[int, Field(ge=1, le=52)] = 12
    due_within_days: Annotated[int, Field(ge=1, le=730)] = 90
    category: ForecastCategory | None = None
    status: OpportunityStatus | None = None
    opportunities_from: RowOffset = 0
    tier: AccountTier | None = None
    accounts_from: RowOffset = 0


class RepChange(Input):
    action: Literal["pause", "resume", "weight", "daily_cap"]
    weight: Annotated[int, Field(ge=0, le=100)] | None = None
    daily_cap: Annotated[int, Field(ge=0, le=MAX_INT32)] | None = None  # none: no cap


class NewRep(Input):
    id: Id
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    email: (
        Annotated[str, Field(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")]
        | None
    ) = None
    role: Literal["SDR", "AE"]
    region: Literal["AMER", "EMEA", "APAC"] | None = None
    certified: Annotated[bool, Checkbox] = False


class Assignment(Input):
    owner_id: Id
    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]


class PathId(Input):
    id: Id


class SignIn(Input):
    token: Annotated[str, Field(min_length=1, max_length=500)]


InputT = TypeVar("InputT", bound=Input)

# The field names a person sees, where the model's differ.
_SHOWN = {"from_": "from"}


def parse(model: type[InputT], values: Mapping[str, Any]) -> InputT:
    """``model`` from a query string or a form; the first problem, by field, if any. An
    empty box means "not given": the field's default, or "is required"."""
    given = {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        raise InputRefused(_SHOWN.get(where, where) or "input", _plain(error)) from None


def _plain(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        return "has characters that are not allowed"
    if kind in ("date_from_datetime_parsing", "date_parsing", "date_type"):
        return "must be a date like 2026-12-03"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "must be a whole number"
    if kind == "literal_error":
        return f"must be one of {context.get('expected', 'the listed values')}"
    return str(error.get("msg", "is not valid"))
