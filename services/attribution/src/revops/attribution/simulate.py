"""A synthetic history of revenue operations (forms, sign-ups, CRM people, conversions,
opportunities over accounts), deterministic for a seed: for the throughput bench and the
tests that compare a live run with a recompute."""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from revops.events.catalogue import (
    Envelope,
    FormSubmitted,
    FormSubmittedEvent,
    LeadConverted,
    LeadConvertedEvent,
    OpportunityChanged,
    OpportunityChangedEvent,
    PersonChanged,
    PersonChangedEvent,
    SignupCreated,
    SignupCreatedEvent,
    SourceRef,
    make_event,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
FORM_TYPES = ["demo_request", "contact", "ebook", "whitepaper", "newsletter", "webinar", "nps"]
URLS = [
    "https://about.example.com/?utm_source=google&utm_medium=cpc",
    "https://about.example.com/blog?utm_medium=email&utm_campaign=launch",
    "https://about.example.com/",
    None,
]
SOURCES = ["SDR Created", "AE Created", "Inbound", "Inbound", "Referral", "Event"]
STATUSES = ["Working", "Nurture", "Qualified", "Unqualified"]


def hash_of(text: str) -> int:
    return zlib.crc32(text.encode())


REFERRERS = ["https://www.google.com/", "https://www.linkedin.com/", "https://github.com/", None]


def generate(count: int, seed: int = 7) -> list[Envelope]:
    """About 60% forms, 10% sign-ups, 15% CRM people, 7.5% conversions, 7.5% opportunity
    changes; four people per account; a year of history, published as it happened
    (in time order, a few minutes of jitter: ingest publishes events as they come)."""
    rng = random.Random(seed)
    events: list[Envelope] = []
    accounts = max(1, count // 40)
    opportunities = 0
    contacts: dict[str, datetime] = {}
    i = 0
    while len(events) < count:
        i += 1
        account = rng.randrange(accounts)
        email = f"p{account}-{rng.randrange(4)}@acct{account}.example"
        at = START + timedelta(minutes=i * 365 * 24 * 60 / count + rng.randrange(10))
        roll = rng.random()
        if roll < 0.60:
            events.append(
                make_event(
                    FormSubmittedEvent,
                    id=f"form-{i}",
                    source="hubspot",
                    occurred_at=at,
                    payload=FormSubmitted(
                        email=email,
                        form_id=f"form-{rng.randrange(20)}",
                        form_type=rng.choice(FORM_TYPES),
                        campaign_id=f"cmp-{rng.randrange(50)}",
                        page_url=rng.choice(URLS),
                        referrer=rng.choice(REFERRERS),
                    ),
                )
            )
        elif roll < 0.70:
            events.append(
                make_event(
                    SignupCreatedEvent,
                    id=f"signup-{i}",
                    source="product",
                    occurred_at=at,
                    payload=SignupCreated(
                        user_id=f"u{i}", email=email, signup_type="cloud", first_source_url=None
                    ),
                )
            )
        elif roll < 0.85:
            # The contact's record: created once with its source, then updated (status,
            # owner: the CRM's everyday churn).
            created = email not in contacts
            contacts.setdefault(email, at)
            events.append(
                make_event(
                    PersonChangedEvent,
                    id=f"person-{i}",
                    source="salesforce",
                    occurred_at=at,
                    payload=PersonChanged(
                        person_type="contact",
                        change="created" if created else "updated",
                        source_ref=SourceRef(
                            system="salesforce", object_type="Contact", object_id=f"003{email}"
                        ),
                        email=email,
                        lead_source=SOURCES[hash_of(email) % len(SOURCES)] if created else None,
                        status=None if created else rng.choice(STATUSES),
                        account_id=f"001{account}",
                        created_at=contacts[email],
                    ),
                )
            )
        elif roll < 0.925:
            opportunities += 1
            events.append(
                make_event(
                    LeadConvertedEvent,
                    id=f"conversion-{i}",
                    source="salesforce",
                    occurred_at=at,
                    payload=LeadConverted(
                        lead_id=f"00Q{i}",
                        account_id=f"001{account}",
                        opportunity_id=f"006{opportunities}",
                        email=email,
                    ),
                )
            )
        else:
            opportunity = rng.randrange(1, opportunities + 2)
            events.append(
                make_event(
                    OpportunityChangedEvent,
                    id=f"opportunity-{i}",
                    source="salesforce",
                    occurred_at=at,
                    payload=OpportunityChanged(
                        opportunity_id=f"006{opportunity}",
                        change="created",
                        source_ref=SourceRef(
                            system="salesforce",
                            object_type="Opportunity",
                            object_id=f"006{opportunity}",
                        ),
                        account_id=f"001{account}",
                        stage=rng.choice(["1 - Interest", "2 - Qualified", "3 - Proposal"]),
                        amount=Decimal(rng.randrange(5_000, 200_000)),
                        created_at=at,
                    ),
                )
            )
    return events
