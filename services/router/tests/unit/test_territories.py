from datetime import UTC, datetime

import pytest

from revops.router.domain.regions import _SPELLINGS, DEFAULT_REGION_MAP, RegionMap
from revops.router.domain.reps import Rep
from revops.router.domain.rules import (
    Lead,
    QueueSnapshot,
    RoutingContext,
    RoutingPolicy,
    members_of,
    route_lead,
)
from revops.router.domain.territories import (
    InvalidPolicy,
    LeadFields,
    Territory,
    TerritoryPolicy,
    default_policy,
    place_lead,
)
from revops.router.policy_document import parse_policy

POLICY_TEXT = """\
territories:
  - name: us-west-mid-market
    region: AMER
    match:
      countries: [US, Canada]
      states: [CA, "Oregon"]
      employees: {min: 200, max: 999}
  - name: dach-demo
    region: EMEA
    match:
      countries: [DE, AT, CH]
      form_types: [demo_request]
  - name: enterprise-segment
    region: APAC
    match:
      segments: [Enterprise]
fallback_region: EMEA
"""


def policy() -> TerritoryPolicy:
    return parse_policy(POLICY_TEXT, version=7)


def test_the_first_matching_territory_wins_in_the_stated_order():
    lead = LeadFields(country="USA", state="ca", employees=500, segment="enterprise")
    placed = place_lead(policy(), lead, None)
    assert (placed.territory, placed.region, placed.queue, placed.policy_version) == (
        "us-west-mid-market",
        "AMER",
        "inbound-AMER",
        7,
    )


@pytest.mark.parametrize(
    ("employees", "territory"),
    [(199, None), (200, "us-west-mid-market"), (999, "us-west-mid-market"), (1000, None)],
)
def test_a_size_band_includes_both_bounds_and_nothing_beyond(employees, territory):
    lead = LeadFields(country="US", state="Oregon", employees=employees)
    assert place_lead(policy(), lead, None).territory == territory


def test_a_lead_without_the_field_a_criterion_needs_does_not_match_it():
    assert place_lead(policy(), LeadFields(country="US", state="CA"), None).territory is None
    assert place_lead(policy(), LeadFields(country="DE"), None).territory is None


def test_values_compare_without_case_accents_or_spelling():
    lead = LeadFields(country="Deutschland", form_type="  DEMO_REQUEST ")
    assert place_lead(policy(), lead, None).territory == "dach-demo"
    assert place_lead(policy(), LeadFields(segment="ENTERPRISE"), None).territory == (
        "enterprise-segment"
    )


def test_no_territory_falls_to_the_account_region_then_the_fallback_never_nowhere():
    lead = LeadFields(country="FR")
    assert place_lead(policy(), lead, "APAC").region == "APAC"
    placed = place_lead(policy(), lead, None)
    assert (placed.region, placed.territory) == ("EMEA", None)
    bare = TerritoryPolicy(1, (Territory("x", "AMER", frozenset({"US"})),))
    assert place_lead(bare, lead, None).queue is None  # the caller's unassigned queue


def test_a_territory_with_no_criteria_takes_every_lead():
    catch_all = TerritoryPolicy(1, (Territory("all", "APAC"),))
    assert place_lead(catch_all, LeadFields(), None).territory == "all"


def test_the_default_policy_places_every_country_as_the_region_map_does():
    spellings = [*_SPELLINGS, "Atlantis", "", None]
    for region_map in (DEFAULT_REGION_MAP, RegionMap({"MX": "EMEA", "Atlantis": "APAC"})):
        default = default_policy(region_map)
        for spelling in spellings:
            placed = place_lead(default, LeadFields(country=spelling), None)
            assert placed.region == region_map.region_of(spelling), spelling
            assert placed.territory == placed.region  # territories named after regions
    assert place_lead(default_policy(fallback_region="AMER"), LeadFields(), None).region == "AMER"


def errors_of(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(InvalidPolicy) as caught:
        parse_policy(text, 1)
    return [(e.line, e.field) for e in caught.value.errors]


def test_an_invalid_policy_names_every_error_with_its_line_and_field():
    text = """\
territories:
  - name: ok
    region: AMER
  - name: bad
    region: MARS
    match:
      countries: [US, Narnia]
      employees: {min: 10, max: 5}
      colour: blue
fallback_region: EMEA
"""
    assert errors_of(text) == [
        (5, "territories[1].region"),
        (7, "territories[1].match.countries"),
        (8, "territories[1].match.employees"),
        (9, "territories[1].match.colour"),
    ]


def test_duplicate_names_missing_fields_and_broken_syntax_are_refused():
    dup = "territories:\n  - {name: a, region: AMER}\n  - {name: a, region: EMEA}\n"
    assert errors_of(dup) == [(3, "territories[1].name")]
    assert errors_of("territories:\n  - region: AMER\n") == [(2, "territories[0].name")]
    assert errors_of("territories: []\n") == [(1, "territories")]
    assert errors_of("territories: [\n") == [(2, "(document)")]
    assert errors_of("") == [(None, "(document)")]


def test_json_is_a_policy_document_too():
    text = '{"territories": [{"name": "j", "region": "APAC", "match": {"countries": ["JP"]}}]}'
    assert place_lead(parse_policy(text, 3), LeadFields(country="Japan"), None).territory == "j"


def test_a_decision_records_the_territory_and_the_policy_version():
    sdr = Rep("S1", "SDR", "EMEA", certified=True)
    queue = QueueSnapshot("inbound-EMEA", members_of([sdr], "SDR"))
    lead = Lead("L1", "a@b.com", datetime(2026, 5, 1, tzinfo=UTC), "US", "demo_request")
    context = RoutingContext({"S1": sdr}, queue=queue, territories=policy())
    decision = route_lead(lead, context, RoutingPolicy())
    assert (decision.rule, decision.owner_id, decision.queue) == ("round_robin", "S1", queue.name)
    assert (decision.territory, decision.policy_version) == (None, 7)  # the fallback placed it
    texan = Lead("L2", "c@d.com", lead.occurred_at, "US", state="TX", segment="enterprise")
    apac = QueueSnapshot("inbound-APAC", ())
    placed = route_lead(
        texan, RoutingContext({}, queue=apac, territories=policy()), RoutingPolicy()
    )
    assert (placed.territory, placed.region, placed.reason) == (
        "enterprise-segment",
        "APAC",
        "Nobody eligible in inbound-APAC",
    )


def test_a_policy_without_a_fallback_leaves_it_to_the_configuration():
    bare = TerritoryPolicy(2, ())
    lead = Lead("L1", "a@b.com", datetime(2026, 5, 1, tzinfo=UTC), "US")
    nowhere = route_lead(lead, RoutingContext({}, territories=bare), RoutingPolicy())
    assert (nowhere.queue, nowhere.region, nowhere.policy_version) == ("unassigned", None, 2)
    apac = RoutingContext({}, queue=QueueSnapshot("inbound-APAC", ()), territories=bare)
    assert route_lead(lead, apac, RoutingPolicy(fallback_region="APAC")).region == "APAC"


def test_the_country_index_keeps_the_stated_order_and_the_territories_without_countries():
    # A country-less territory between two of the US: it wins over the later one, and
    # leads of other countries, or of none, are tried against it alone.
    territories = parse_policy(
        """\
territories:
  - {name: us-big, region: AMER, match: {countries: [US], employees: {min: 1000}}}
  - {name: any-enterprise, region: APAC, match: {segments: [enterprise]}}
  - {name: us-rest, region: EMEA, match: {countries: [USA]}}
""",
        version=1,
    )

    def territory(**fields: object) -> str | None:
        found = territories.territory_of(LeadFields(**fields))  # type: ignore[arg-type]
        return found.name if found else None

    for _ in range(2):  # the second time from the index
        assert territory(country="US", employees=5000, segment="enterprise") == "us-big"
        assert territory(country="United States", segment="enterprise") == "any-enterprise"
        assert territory(country="us", segment="smb") == "us-rest"
        assert territory(country="DE", segment="enterprise") == "any-enterprise"
        assert territory(country="DE") is None
        assert territory(country=None, segment="Enterprise") == "any-enterprise"
        assert territory(country="Narnia", employees=5000) is None
