"""Sales region from a country as people and CRMs write it: names, ISO codes, aliases."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from revops.router.domain.reps import REGIONS, Region

# alpha-2, alpha-3, region, then the English name and common aliases separated by "|".
_COUNTRIES = """
US USA AMER United States|United States of America|America|U.S.|U.S.A.|US of A
CA CAN AMER Canada
MX MEX AMER Mexico|México
BR BRA AMER Brazil|Brasil
AR ARG AMER Argentina
CL CHL AMER Chile
CO COL AMER Colombia
PE PER AMER Peru|Perú
VE VEN AMER Venezuela
EC ECU AMER Ecuador
BO BOL AMER Bolivia
PY PRY AMER Paraguay
UY URY AMER Uruguay
GY GUY AMER Guyana
SR SUR AMER Suriname
CR CRI AMER Costa Rica
PA PAN AMER Panama|Panamá
GT GTM AMER Guatemala
HN HND AMER Honduras
SV SLV AMER El Salvador
NI NIC AMER Nicaragua
BZ BLZ AMER Belize
CU CUB AMER Cuba
DO DOM AMER Dominican Republic
HT HTI AMER Haiti
JM JAM AMER Jamaica
TT TTO AMER Trinidad and Tobago
BS BHS AMER Bahamas|The Bahamas
BB BRB AMER Barbados
PR PRI AMER Puerto Rico
BM BMU AMER Bermuda
KY CYM AMER Cayman Islands
GB GBR EMEA United Kingdom|UK|U.K.|Great Britain|Britain|England|Scotland|Wales|Northern Ireland
IE IRL EMEA Ireland|Republic of Ireland
FR FRA EMEA France
DE DEU EMEA Germany|Deutschland
NL NLD EMEA Netherlands|The Netherlands|Holland
BE BEL EMEA Belgium
LU LUX EMEA Luxembourg
CH CHE EMEA Switzerland
AT AUT EMEA Austria
IT ITA EMEA Italy|Italia
ES ESP EMEA Spain|España
PT PRT EMEA Portugal
DK DNK EMEA Denmark
SE SWE EMEA Sweden
NO NOR EMEA Norway
FI FIN EMEA Finland
IS ISL EMEA Iceland
PL POL EMEA Poland
CZ CZE EMEA Czechia|Czech Republic
SK SVK EMEA Slovakia
HU HUN EMEA Hungary
RO ROU EMEA Romania
BG BGR EMEA Bulgaria
GR GRC EMEA Greece
CY CYP EMEA Cyprus
MT MLT EMEA Malta
SI SVN EMEA Slovenia
HR HRV EMEA Croatia
RS SRB EMEA Serbia
BA BIH EMEA Bosnia and Herzegovina
ME MNE EMEA Montenegro
MK MKD EMEA North Macedonia|Macedonia
AL ALB EMEA Albania
EE EST EMEA Estonia
LV LVA EMEA Latvia
LT LTU EMEA Lithuania
UA UKR EMEA Ukraine
BY BLR EMEA Belarus
MD MDA EMEA Moldova
RU RUS EMEA Russia|Russian Federation
TR TUR EMEA Turkey|Türkiye|Turkiye
GE GEO EMEA Georgia
AM ARM EMEA Armenia
AZ AZE EMEA Azerbaijan
KZ KAZ EMEA Kazakhstan
UZ UZB EMEA Uzbekistan
IL ISR EMEA Israel
AE ARE EMEA United Arab Emirates|UAE|U.A.E.
SA SAU EMEA Saudi Arabia|KSA
QA QAT EMEA Qatar
KW KWT EMEA Kuwait
BH BHR EMEA Bahrain
OM OMN EMEA Oman
JO JOR EMEA Jordan
LB LBN EMEA Lebanon
IQ IRQ EMEA Iraq
IR IRN EMEA Iran
EG EGY EMEA Egypt
MA MAR EMEA Morocco
DZ DZA EMEA Algeria
TN TUN EMEA Tunisia
LY LBY EMEA Libya
NG NGA EMEA Nigeria
GH GHA EMEA Ghana
KE KEN EMEA Kenya
ET ETH EMEA Ethiopia
TZ TZA EMEA Tanzania
UG UGA EMEA Uganda
RW RWA EMEA Rwanda
ZA ZAF EMEA South Africa
ZW ZWE EMEA Zimbabwe
ZM ZMB EMEA Zambia
BW BWA EMEA Botswana
NA NAM EMEA Namibia
MZ MOZ EMEA Mozambique
AO AGO EMEA Angola
SN SEN EMEA Senegal
CI CIV EMEA Côte d'Ivoire|Cote d'Ivoire|Ivory Coast
CM CMR EMEA Cameroon
MU MUS EMEA Mauritius
CN CHN APAC China|People's Republic of China|PRC
HK HKG APAC Hong Kong
MO MAC APAC Macau|Macao
TW TWN APAC Taiwan
JP JPN APAC Japan
KR KOR APAC South Korea|Korea|Republic of Korea
IN IND APAC India
PK PAK APAC Pakistan
BD BGD APAC Bangladesh
LK LKA APAC Sri Lanka
NP NPL APAC Nepal
SG SGP APAC Singapore
MY MYS APAC Malaysia
ID IDN APAC Indonesia
TH THA APAC Thailand
VN VNM APAC Vietnam|Viet Nam
PH PHL APAC Philippines|The Philippines
KH KHM APAC Cambodia
MM MMR APAC Myanmar|Burma
MN MNG APAC Mongolia
AU AUS APAC Australia
NZ NZL APAC New Zealand
FJ FJI APAC Fiji
PG PNG APAC Papua New Guinea
"""


@functools.lru_cache(maxsize=4096)
def normalise_country(value: str) -> str:
    """Case, accents, dots and spacing do not matter: "U.S.A." == "usa", "México" == "mexico"."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold().replace(".", "").replace("\u2019", "'")
    return re.sub(r"\s+", " ", text).strip()


def _parse_countries() -> tuple[dict[str, str], dict[str, str]]:
    spellings: dict[str, str] = {}  # any spelling -> alpha-2
    regions: dict[str, str] = {}  # alpha-2 -> region
    for line in _COUNTRIES.strip().splitlines():
        alpha2, alpha3, region, names = line.split(" ", 3)
        assert region in REGIONS, line
        regions[alpha2] = region
        for spelling in (alpha2, alpha3, *names.split("|")):
            spellings[normalise_country(spelling)] = alpha2
    return spellings, regions


_SPELLINGS, _DEFAULT_REGIONS = _parse_countries()


def _as_region(value: str) -> Region:
    for region in REGIONS:
        if region == value:
            return region
    raise ValueError(f"region must be one of {REGIONS}, got {value!r}")


def country_code(country: str) -> str | None:
    """The ISO 3166 alpha-2 code of a country name, alias or code; None if unknown."""
    return _SPELLINGS.get(normalise_country(country))


@dataclass(frozen=True)
class RegionMap:
    """Country -> region, with the defaults above and overrides from configuration.

    An override keyed by any spelling of a known country ("Mexico", "MX", "MEX") applies
    to every spelling of it; an unknown key is taken as one more spelling.
    """

    overrides: Mapping[str, Region] = field(default_factory=dict)
    _by_code: Mapping[str, Region] = field(init=False, repr=False, compare=False)
    _by_spelling: Mapping[str, Region] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, Region] = {code: _as_region(r) for code, r in _DEFAULT_REGIONS.items()}
        by_spelling: dict[str, Region] = {}
        for key, region in self.overrides.items():
            if region not in REGIONS:
                raise ValueError(f"region for {key!r} must be one of {REGIONS}, got {region!r}")
            code = country_code(key)
            if code is None:
                by_spelling[normalise_country(key)] = region
            else:
                by_code[code] = region
        object.__setattr__(self, "_by_code", MappingProxyType(by_code))
        object.__setattr__(self, "_by_spelling", MappingProxyType(by_spelling))

    def country_keys(self) -> dict[str, Region]:
        """Every country this map knows, keyed as territories compare countries: the ISO
        alpha-2 code, or the normalised spelling of an override that names no known
        country."""
        return {**self._by_code, **self._by_spelling}

    def region_of(self, country: str | None) -> Region | None:
        if not country or not country.strip():
            return None
        spelling = normalise_country(country)
        if spelling in self._by_spelling:
            return self._by_spelling[spelling]
        code = _SPELLINGS.get(spelling)
        return self._by_code.get(code) if code else None


DEFAULT_REGION_MAP = RegionMap()
