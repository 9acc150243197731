import pytest

from revops.router.domain.regions import DEFAULT_REGION_MAP, RegionMap, country_code


@pytest.mark.parametrize(
    ("country", "region"),
    [
        ("United States", "AMER"),
        ("US", "AMER"),
        ("usa", "AMER"),
        ("U.S.A.", "AMER"),
        ("United States of America", "AMER"),
        ("Canada", "AMER"),
        ("BRA", "AMER"),
        ("México", "AMER"),
        ("mexico", "AMER"),
        ("UK", "EMEA"),
        ("GB", "EMEA"),
        ("gbr", "EMEA"),
        ("England", "EMEA"),
        ("Germany", "EMEA"),
        ("de", "EMEA"),
        ("Deutschland", "EMEA"),
        ("  united   arab emirates ", "EMEA"),
        ("UAE", "EMEA"),
        ("South Africa", "EMEA"),
        ("Türkiye", "EMEA"),
        ("C\u00f4te d\u2019Ivoire", "EMEA"),
        ("Japan", "APAC"),
        ("JPN", "APAC"),
        ("in", "APAC"),
        ("Australia", "APAC"),
        ("South Korea", "APAC"),
        ("Viet Nam", "APAC"),
    ],
)
def test_default_regions(country, region):
    assert DEFAULT_REGION_MAP.region_of(country) == region


@pytest.mark.parametrize("country", [None, "", "   ", "Narnia", "XX"])
def test_unknown_country_has_no_region(country):
    assert DEFAULT_REGION_MAP.region_of(country) is None


def test_codes_and_names_agree():
    assert country_code("United Kingdom") == country_code("GBR") == country_code("uk") == "GB"


def test_override_by_any_spelling_applies_to_all_spellings():
    m = RegionMap({"Mexico": "EMEA"})
    assert m.region_of("MX") == m.region_of("MEX") == m.region_of("méxico") == "EMEA"
    assert m.region_of("Canada") == "AMER"
    assert DEFAULT_REGION_MAP.region_of("MX") == "AMER"


def test_override_adds_unknown_spelling():
    m = RegionMap({"Atlantis": "APAC"})
    assert m.region_of("atlantis") == "APAC"


def test_override_rejects_unknown_region():
    with pytest.raises(ValueError, match="LATAM"):
        RegionMap({"Brazil": "LATAM"})  # type: ignore[dict-item]
