from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from revops.attribution.domain.lead_source import (
    FirstTouchpoint,
    GatedTouch,
    LeadSource,
    PersonCreated,
    RepRole,
    TouchKind,
    TouchpointRules,
    attribute_person,
    first_touchpoint,
    lead_source,
    parse_lead_source,
)
from revops.attribution.domain.original_source import OriginalSource

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def form(touch_id: str, at: datetime, form_type: str | None = "demo", **kw: str) -> GatedTouch:
    return GatedTouch(
        touch_id=touch_id, kind=TouchKind.FORM, occurred_at=at, form_type=form_type, **kw
    )


def signup(touch_id: str, at: datetime, kind: TouchKind = TouchKind.CLOUD_SIGNUP) -> GatedTouch:
    return GatedTouch(touch_id=touch_id, kind=kind, occurred_at=at)


@pytest.mark.parametrize(
    ("form_type", "expected"),
    [
        ("demo", FirstTouchpoint.CONTACT_DEMO_FORM),
        ("contact", FirstTouchpoint.CONTACT_DEMO_FORM),
        ("Demo Request", FirstTouchpoint.CONTACT_DEMO_FORM),
        ("contact-us", FirstTouchpoint.CONTACT_DEMO_FORM),
        ("ebook", FirstTouchpoint.CONTENT_DOWNLOAD),
        ("whitepaper", FirstTouchpoint.CONTENT_DOWNLOAD),
        ("newsletter", FirstTouchpoint.SUBSCRIPTION),
        ("nps", FirstTouchpoint.FEEDBACK_FORM),
        ("NPS survey", FirstTouchpoint.FEEDBACK_FORM),
        ("event_registration", FirstTouchpoint.EVENT),
        ("webinar", FirstTouchpoint.EVENT),
        ("referral", FirstTouchpoint.REFERRAL),
        ("inbound_email", FirstTouchpoint.INBOUND_EMAIL),
        ("careers", FirstTouchpoint.OTHER),
        (None, FirstTouchpoint.OTHER),
    ],
)
def test_form_type_gives_the_default_touchpoint(
    form_type: str | None, expected: FirstTouchpoint
) -> None:
    assert first_touchpoint([form("f1", T0, form_type)]) == expected


def test_signups_give_their_own_touchpoints() -> None:
    assert first_touchpoint([signup("s1", T0)]) == FirstTouchpoint.CLOUD_SIGN_UP
    private = signup("s2", T0, TouchKind.PRIVATE_INSTALL)
    assert first_touchpoint([private]) == FirstTouchpoint.PRIVATE_INSTANCE_INSTALL


def test_a_form_id_in_configuration_overrides_its_type() -> None:
    rules = TouchpointRules(by_form_id={"310000a0": FirstTouchpoint.EVENT})
    touch = form("f1", T0, "demo", form_id="310000a0")
    assert first_touchpoint([touch], rules) == FirstTouchpoint.EVENT
    other = form("f2", T0, "demo", form_id="417ec50b")
    assert first_touchpoint([other], rules) == FirstTouchpoint.CONTACT_DEMO_FORM


def test_form_types_are_configuration() -> None:
    rules = TouchpointRules(by_form_type={"trial": FirstTouchpoint.CLOUD_SIGN_UP})
    assert first_touchpoint([form("f1", T0, "trial")], rules) == FirstTouchpoint.CLOUD_SIGN_UP
    # The configured map replaces the defaults.
    assert first_touchpoint([form("f2", T0, "demo")], rules) == FirstTouchpoint.OTHER


def test_the_first_touchpoint_is_never_overwritten_by_a_later_form() -> None:
    ebook = form("f1", T0, "ebook")
    demo = form("f2", T0 + timedelta(days=3), "demo")
    signup_later = signup("s1", T0 + timedelta(days=9))
    assert first_touchpoint([ebook]) == FirstTouchpoint.CONTENT_DOWNLOAD
    assert first_touchpoint([ebook, demo]) == FirstTouchpoint.CONTENT_DOWNLOAD
    assert first_touchpoint([ebook, demo, signup_later]) == FirstTouchpoint.CONTENT_DOWNLOAD


def test_an_earlier_form_arriving_late_still_wins_whatever_the_arrival_order() -> None:
    touches = [
        form("late", T0 + timedelta(days=5), "demo"),
        signup("s1", T0 + timedelta(days=1)),
        form("early", T0, "newsletter"),
    ]
    for order in permutations(touches):
        assert first_touchpoint(order) == FirstTouchpoint.SUBSCRIPTION


def test_simultaneous_touches_are_ordered_by_id_for_stable_replays() -> None:
    a = form("a", T0, "ebook")
    b = form("b", T0, "demo")
    assert first_touchpoint([b, a]) == first_touchpoint([a, b]) == FirstTouchpoint.CONTENT_DOWNLOAD


def test_an_outbound_lead_stays_uncategorized_until_its_first_form() -> None:
    created = PersonCreated(occurred_at=T0, created_by_role=RepRole.SDR, offline_detail="CRM_UI")
    before = attribute_person(created, [])
    assert before.lead_source == LeadSource.SDR_CREATED
    assert before.first_touchpoint == FirstTouchpoint.UNCATEGORIZED
    assert before.first_touch_at is None
    assert before.original_source.source == OriginalSource.OFFLINE
    assert before.original_source.detail == "CRM_UI"

    later_form = form("f1", T0 + timedelta(days=20), "demo")
    after = attribute_person(created, [later_form])
    assert after.first_touchpoint == FirstTouchpoint.CONTACT_DEMO_FORM
    assert after.first_touch_at == T0 + timedelta(days=20)
    # Outbound stays the lead source, and the original source stays offline.
    assert after.lead_source == LeadSource.SDR_CREATED
    assert after.original_source.source == OriginalSource.OFFLINE


def test_an_ae_created_lead_is_ae_created() -> None:
    created = PersonCreated(occurred_at=T0, created_by_role=RepRole.AE)
    assert lead_source(created, []) == LeadSource.AE_CREATED


def test_a_form_before_the_reps_record_makes_the_person_inbound() -> None:
    created = PersonCreated(occurred_at=T0, created_by_role=RepRole.SDR)
    earlier = form("f1", T0 - timedelta(minutes=1), "ebook")
    assert lead_source(created, [earlier]) == LeadSource.INBOUND


def test_a_form_at_the_same_instant_as_the_creation_created_the_record() -> None:
    created = PersonCreated(occurred_at=T0, lead_source="Referral")
    assert lead_source(created, [form("f1", T0, "demo")]) == LeadSource.INBOUND
    assert lead_source(created, [form("f1", T0 + timedelta(seconds=1))]) == LeadSource.REFERRAL


@pytest.mark.parametrize(
    ("touch", "expected"),
    [
        (form("f", T0, "demo"), LeadSource.INBOUND),
        (form("f", T0, "ebook"), LeadSource.INBOUND),
        (signup("s", T0), LeadSource.INBOUND),
        (signup("s", T0, TouchKind.PRIVATE_INSTALL), LeadSource.INBOUND),
        (form("f", T0, "webinar"), LeadSource.EVENT),
        (form("f", T0, "nps"), LeadSource.FEEDBACK_FORM),
        (form("f", T0, "referral"), LeadSource.REFERRAL),
    ],
)
def test_a_person_created_by_a_gated_interaction_takes_its_source(
    touch: GatedTouch, expected: LeadSource
) -> None:
    assert lead_source(None, [touch]) == expected


def test_a_person_with_nothing_known_is_other() -> None:
    assert lead_source(None, []) == LeadSource.OTHER
    assert lead_source(PersonCreated(occurred_at=T0), []) == LeadSource.OTHER


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SDR Created", LeadSource.SDR_CREATED),
        ("sdr_created", LeadSource.SDR_CREATED),
        ("AE Created", LeadSource.AE_CREATED),
        ("Inbound", LeadSource.INBOUND),
        ("Feedback Form", LeadSource.FEEDBACK_FORM),
        ("LeadIQ", LeadSource.OTHER),
        ("", None),
        (None, None),
    ],
)
def test_crm_lead_source_values_are_parsed(value: str | None, expected: LeadSource | None) -> None:
    assert parse_lead_source(value) == expected


def test_original_source_comes_from_the_first_touch_url() -> None:
    first = form(
        "f1",
        T0,
        "ebook",
        page_url="https://info.sourcegraph.com/ebook?utm_source=google&utm_medium=cpc",
        referrer="https://www.google.com/",
    )
    later = form("f2", T0 + timedelta(days=1), referrer="https://news.ycombinator.com/")
    person = attribute_person(None, [later, first])
    assert person.original_source.source == OriginalSource.PAID_SEARCH
    assert person.first_url == first.page_url
    assert person.first_touch_id == "f1"


def test_an_inbound_crm_record_without_a_tracked_touch_is_not_offline() -> None:
    person = attribute_person(PersonCreated(occurred_at=T0, lead_source="Inbound"), [])
    assert person.lead_source == LeadSource.INBOUND
    assert person.original_source.source == OriginalSource.DIRECT_TRAFFIC


# --- original source from the first page seen --------------------------------------------

SEEN_AT = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def test_the_first_page_seen_decides_original_source_over_the_form_page() -> None:
    told = GatedTouch(
        "f1",
        TouchKind.FORM,
        SEEN_AT,
        form_type="demo",
        page_url="https://example.com/demo",
        referrer=None,
        first_page_url="https://example.com/pricing?utm_source=google&utm_medium=cpc",
        first_referrer="https://www.google.com/",
    )
    result = attribute_person(None, [told])
    assert result.original_source.source is OriginalSource.PAID_SEARCH
    assert result.first_url == "https://example.com/pricing?utm_source=google&utm_medium=cpc"
    assert result.first_referrer == "https://www.google.com/"


def test_without_a_first_page_seen_the_first_touch_page_decides_as_before() -> None:
    plain = form(
        "f1", SEEN_AT, page_url="https://example.com/demo", referrer="https://www.bing.com/"
    )
    result = attribute_person(None, [plain])
    assert result.original_source.source is OriginalSource.ORGANIC_SEARCH
    assert (result.first_url, result.first_referrer) == (
        "https://example.com/demo",
        "https://www.bing.com/",
    )


def test_the_earliest_touch_that_tells_the_first_page_wins_in_any_order() -> None:
    def told(touch_id: str, at: datetime, url: str) -> GatedTouch:
        return GatedTouch(touch_id, TouchKind.FORM, at, form_type="demo", first_page_url=url)

    earlier = told("f2", SEEN_AT, "https://example.com/?utm_medium=email")
    later = told("f3", SEEN_AT + timedelta(days=3), "https://example.com/?utm_medium=cpc")
    untold = form("f1", SEEN_AT - timedelta(days=1), page_url="https://example.com/blog")
    for order in permutations([earlier, later, untold]):
        result = attribute_person(None, order)
        assert result.original_source.source is OriginalSource.EMAIL_MARKETING
        assert result.first_touch_id == "f1"  # the first touchpoint is still the first form


def test_a_first_referrer_alone_is_the_first_visit_without_a_known_page() -> None:
    touch = GatedTouch(
        "f1",
        TouchKind.FORM,
        SEEN_AT,
        page_url="https://example.com/demo",
        first_referrer="https://news.example.org/",
    )
    result = attribute_person(None, [touch])
    assert result.original_source.source is OriginalSource.REFERRALS
    assert (result.first_url, result.first_referrer) == (None, "https://news.example.org/")
