import pytest

from revops.router.domain.company_names import (
    NamedAccount,
    NameIndex,
    match_company,
    normalise_company,
)

ACCOUNTS = [
    NamedAccount("001ACME", "ACME Incorporated"),
    NamedAccount("001PG", "Procter and Gamble"),
    NamedAccount("001SG", "Societe Generale"),
    NamedAccount("001HP", "Hewlett Packard Company"),
    NamedAccount("001DT", "Deutsche Telekom AG"),
    NamedAccount("001GM", "General Mills, Inc."),
    NamedAccount("001DD", "Delta Dental"),
    NamedAccount("001AA", "American Airlines Group"),
    NamedAccount("001MT", "Metal Works Ltd"),
    NamedAccount("001APL", "Apply Ltd"),
    NamedAccount("001PL", "Polska Grupa"),
    NamedAccount("001AWS", "Amazon Web Services"),
    NamedAccount("001MB", "Mercedes-Benz AG"),
]
INDEX = NameIndex.of(ACCOUNTS)


@pytest.mark.parametrize(
    ("given", "account_id", "score"),
    [
        # Legal suffixes, punctuation, case, accents, "&" and a leading "the" do not count.
        ("Acme, Inc.", "001ACME", 100.0),
        ("The Procter & Gamble Co.", "001PG", 100.0),
        ("Société Générale S.A.", "001SG", 100.0),
        ("Hewlett-Packard", "001HP", 100.0),
        ("Polska Grupa sp. z o.o.", "001PL", 100.0),
        ("MERCEDES BENZ", "001MB", 100.0),
        # A typo scores high enough.
        ("Deutsche Telecom", "001DT", 93.8),
    ],
)
def test_names_that_are_the_same_company_match_with_their_score(given, account_id, score):
    found = match_company(given, INDEX, 90)
    assert found is not None and (found.account_id, found.score) == (account_id, score)


@pytest.mark.parametrize(
    "given",
    [
        "General Motors",  # 74 against General Mills
        "Delta Airlines",  # another Delta
        "American Express",  # another American
        "Meta",  # another first word than Metal Works': never scored against it
        "Apple",  # 80 against Apply
        "Amazon",  # a part of a name is not the name
        "Acme Bank",
        "",
        "Inc.",  # only a legal form: nothing to compare
    ],
)
def test_false_positives_are_refused(given):
    assert match_company(given, INDEX, 90) is None


def test_the_threshold_is_the_boundary_both_sides():
    assert match_company("Deutsche Telecom", INDEX, 93.75) is not None  # scores 93.75
    assert match_company("Deutsche Telecom", INDEX, 93.76) is None


def test_equal_names_go_to_the_smallest_account_id_whatever_the_order():
    twins = [NamedAccount("002B", "Initech LLC"), NamedAccount("002A", "Initech Corp")]
    for accounts in (twins, twins[::-1]):
        found = match_company("initech", NameIndex.of(accounts))
        assert found is not None and found.account_id == "002A"


def test_normalised_names():
    assert normalise_company("  The  O'Reilly Media, Inc. ") == "oreilly media"
    assert normalise_company("Grupo Bimbo S.A. de C.V.") == "grupo bimbo"
    assert normalise_company("Co") == "co"  # a name is never reduced to nothing
