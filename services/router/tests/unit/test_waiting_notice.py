"""Who is told that a high-priority lead waits in `unassigned` or `manual_review`."""

from datetime import UTC, datetime

from revops.router.domain.reps import Rep
from revops.router.domain.rotation import Member
from revops.router.domain.rules import (
    Lead,
    QueueSnapshot,
    RoutingContext,
    RoutingPolicy,
    route_lead,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOBODY = QueueSnapshot("inbound-AMER", ())


def lead(form_type: str = "demo_request", country: str = "US", is_consultant: bool = False) -> Lead:
    return Lead("L1", "a@b.com", T0, country, form_type, is_consultant)


def test_a_high_priority_lead_nobody_takes_is_announced_to_its_queue_by_default():
    d = route_lead(lead(), RoutingContext({}, queue=NOBODY), RoutingPolicy())
    assert (d.rule, d.queue, d.notify_waiting) == ("unassigned", "unassigned", ("unassigned",))


def test_the_configured_recipients_hear_of_it():
    policy = RoutingPolicy(waiting_lead_recipients=("mgr-1", "mgr-2"))
    d = route_lead(lead(), RoutingContext({}, queue=NOBODY), policy)
    assert d.notify_waiting == ("mgr-1", "mgr-2")


def test_a_consultant_lead_in_manual_review_too():
    d = route_lead(lead(is_consultant=True), RoutingContext({}), RoutingPolicy())
    assert (d.rule, d.notify_waiting) == ("manual_review", ("manual_review",))


def test_a_lead_without_a_region_too():
    d = route_lead(lead(country="Atlantis"), RoutingContext({}), RoutingPolicy())
    assert (d.rule, d.region, d.notify_waiting) == ("unassigned", None, ("unassigned",))


def test_a_normal_lead_waiting_is_not_announced():
    d = route_lead(lead("ebook"), RoutingContext({}, queue=NOBODY), RoutingPolicy())
    assert (d.rule, d.notify_waiting) == ("unassigned", ())


def test_a_high_priority_lead_someone_takes_is_not_announced_as_waiting():
    rep = Rep("sdr-1", "SDR", "AMER", certified=True)
    queue = QueueSnapshot("inbound-AMER", (Member("sdr-1"),))
    d = route_lead(lead(), RoutingContext({"sdr-1": rep}, queue=queue), RoutingPolicy())
    assert (d.rule, d.owner_id, d.notify_waiting) == ("round_robin", "sdr-1", ())
