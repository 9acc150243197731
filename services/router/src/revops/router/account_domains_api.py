"""An account's domains through the API: read, add, remove (admin token).

An edit is an event like a rep's change (``account.domains_set`` on the roster topic,
carrying the whole list after it), so a reset rebuilds it and it is applied before any
lead sent after the answer. Against the CRM's domains of the account the newer change
wins: an admin's edit stands until someone changes the account's website or domains in
the CRM, which then speaks for the account again, as for every other account field.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import AccountDomainsSet, AccountDomainsSetEvent, make_event
from revops.events.service import (
    BAD_JSON_BODY,
    NEEDS_A_TOKEN,
    NEEDS_THE_ADMIN_TOKEN,
    ReadAccess,
    Refusal,
    Responses,
    RuntimeDep,
    SessionDep,
    StoredText,
    WriteAccess,
    invalid,
    not_found,
)
from revops.router import models as m
from revops.router.domain.matching import is_free_mail, normalise_domain
from revops.router.policy_api import publish_acknowledged

router = APIRouter(responses=NEEDS_A_TOKEN, tags=["accounts"])

AccountId = Path(min_length=1, max_length=64, description="the account's CRM id")


class AccountDomains(BaseModel):
    account_id: str = Field(description="the account's CRM id")
    domains: list[str] = Field(
        description="the host names a lead's email domain is matched against (a subdomain "
        "matches its parent), lower case, in order"
    )


class DomainsToAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domains: list[StoredText] = Field(
        min_length=1,
        max_length=100,
        description="host names or web addresses (https://www.acme.com/about gives acme.com)",
    )
    changed_by: StoredText | None = Field(
        default=None, max_length=200, description="who made the change, for the record"
    )


EDIT_REFUSED: Responses = {
    **not_found("account"),
    503: {
        "model": Refusal,
        "description": "Kafka did not acknowledge the change in time: send it again",
    },
}


@router.get(
    "/accounts/{account_id}/domains", dependencies=[ReadAccess], responses=not_found("account")
)
async def account_domains(session: SessionDep, account_id: str = AccountId) -> AccountDomains:
    """The account's domains as the router matches leads against them now."""
    return AccountDomains(account_id=account_id, domains=await _domains_of(session, account_id))


@router.post(
    "/accounts/{account_id}/domains",
    status_code=202,
    dependencies=[WriteAccess],
    responses={**NEEDS_THE_ADMIN_TOKEN, **BAD_JSON_BODY, **EDIT_REFUSED},
)
async def add_domains(
    body: DomainsToAdd, session: SessionDep, runtime: RuntimeDep, account_id: str = AccountId
) -> AccountDomains:
    """Add domains to the account (those it has already are kept once). Published on the
    roster topic; the router applies it before any lead sent after this answer."""
    current = await _domains_of(session, account_id)
    added = [_domain(given, i) for i, given in enumerate(body.domains)]
    after = sorted({*current, *added})
    if after != current:
        await _publish(runtime, account_id, after, body.changed_by)
    return AccountDomains(account_id=account_id, domains=after)


@router.delete(
    "/accounts/{account_id}/domains/{domain}",
    status_code=202,
    dependencies=[WriteAccess],
    responses={**NEEDS_THE_ADMIN_TOKEN, **EDIT_REFUSED},
)
async def remove_domain(
    session: SessionDep,
    runtime: RuntimeDep,
    account_id: str = AccountId,
    domain: str = Path(min_length=1, max_length=255, description="the domain to remove"),
) -> AccountDomains:
    """Remove one domain from the account; leads of that domain match it no more."""
    current = await _domains_of(session, account_id)
    gone = normalise_domain(domain)
    if gone not in current:
        raise HTTPException(404, f"account {account_id} has no domain {gone!r}")
    after = [d for d in current if d != gone]
    await _publish(runtime, account_id, after, None)
    return AccountDomains(account_id=account_id, domains=after)


async def _domains_of(session: AsyncSession, account_id: str) -> list[str]:
    known = await session.scalar(select(m.accounts.c.id).where(m.accounts.c.id == account_id))
    if known is None:
        raise HTTPException(404, f"no such account: {account_id}")
    rows = await session.scalars(
        select(m.account_domains.c.domain)
        .where(m.account_domains.c.account_id == account_id)
        .order_by(m.account_domains.c.domain)
    )
    return list(rows)


def _domain(given: str, index: int) -> str:
    """A domain as accounts store it, or a 422 naming the one refused."""
    domain = normalise_domain(given)
    if "." not in domain or any(not label for label in domain.split(".")) or " " in domain:
        raise invalid("body", f"domains[{index}]", f"{given!r} is not a host name")
    if is_free_mail(domain):
        raise invalid(
            "body", f"domains[{index}]", f"{domain} is a free-mail domain: it never matches"
        )
    return domain


async def _publish(
    runtime: RuntimeDep, account_id: str, domains: list[str], changed_by: str | None
) -> None:
    event = make_event(
        AccountDomainsSetEvent,
        id=f"account-domains:{uuid.uuid4().hex}",
        source="router",
        occurred_at=datetime.now(UTC),
        payload=AccountDomainsSet(account_id=account_id, domains=domains, changed_by=changed_by),
    )
    await publish_acknowledged(runtime, event, "the domains change")
