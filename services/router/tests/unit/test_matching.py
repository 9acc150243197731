import pytest

from revops.router.domain.matching import (
    AccountDomains,
    candidate_domains,
    email_domain,
    is_free_mail,
    match_account,
    normalise_domain,
)

ACME = AccountDomains("001ACME", ("acme.com",), "Acme")
GLOBEX = AccountDomains("001GLOB", ("globex.co.uk", "www.globex.io"), "Globex")
ACCOUNTS = [ACME, GLOBEX]


def test_exact_domain_matches():
    m = match_account("jane@acme.com", ACCOUNTS)
    assert (m.account_id, m.how, m.matched_domain) == ("001ACME", "exact_domain", "acme.com")


def test_subdomain_matches_its_parent():
    m = match_account("jane@eu.sales.acme.com", ACCOUNTS)
    assert (m.account_id, m.how, m.matched_domain) == ("001ACME", "parent_domain", "acme.com")


def test_case_and_www_do_not_matter():
    assert match_account("Jane@WWW.Acme.COM", ACCOUNTS).how == "exact_domain"
    assert match_account("bob@globex.io", ACCOUNTS).account_id == "001GLOB"


def test_more_specific_account_domain_wins_over_parent():
    eu = AccountDomains("001EU", ("eu.acme.com",))
    m = match_account("x@eu.acme.com", [ACME, eu])
    assert (m.account_id, m.how) == ("001EU", "exact_domain")
    m = match_account("x@de.eu.acme.com", [ACME, eu])
    assert (m.account_id, m.how) == ("001EU", "parent_domain")


@pytest.mark.parametrize(
    "email", ["someone@gmail.com", "x@YAHOO.com", "y@outlook.com", "z@hotmail.com", "w@icloud.com"]
)
def test_free_mail_never_matches(email):
    bogus = AccountDomains(
        "001BAD", ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com")
    )
    m = match_account(email, [*ACCOUNTS, bogus])
    assert (m.account_id, m.how) == (None, "none_free_mail")


def test_unknown_domain_is_none():
    m = match_account("a@initech.com", ACCOUNTS)
    assert (m.account_id, m.how, m.domain) == (None, "none", "initech.com")


def test_lookalike_domain_does_not_match():
    assert match_account("a@notacme.com", ACCOUNTS).how == "none"
    assert match_account("a@acme.com.evil.io", ACCOUNTS).how == "none"


def test_registry_suffix_is_not_a_parent():
    other = AccountDomains("001CO", ("co.uk",))
    assert match_account("a@initech.co.uk", [other]).how == "none"
    assert match_account("a@mail.globex.co.uk", ACCOUNTS).account_id == "001GLOB"


def test_two_accounts_on_one_domain_pick_smallest_id_whatever_the_order():
    a = AccountDomains("001B", ("dup.com",))
    b = AccountDomains("001A", ("dup.com",))
    assert match_account("x@dup.com", [a, b]).account_id == "001A"
    assert match_account("x@dup.com", [b, a]).account_id == "001A"


def test_malformed_email_is_none():
    assert match_account("not-an-email", ACCOUNTS).how == "none"
    assert email_domain("@acme.com") is None


def test_normalise_domain_accepts_websites():
    assert normalise_domain("https://www.Acme.com/about") == "acme.com"
    assert normalise_domain("acme.com:443/") == "acme.com"
    assert normalise_domain("acme.com.") == "acme.com"


def test_candidate_domains_stop_at_registrable_domain():
    assert candidate_domains("a.b.acme.co.uk") == ["a.b.acme.co.uk", "b.acme.co.uk", "acme.co.uk"]
    assert candidate_domains("acme.com") == ["acme.com"]


@pytest.mark.parametrize(
    ("domain", "parents"),
    [
        # Registries the Public Suffix List knows and a hand-made list had missed.
        ("shop.acme.co.th", ["shop.acme.co.th", "acme.co.th"]),
        ("eu.acme.com.pl", ["eu.acme.com.pl", "acme.com.pl"]),
        ("a.b.acme.com.au", ["a.b.acme.com.au", "b.acme.com.au", "acme.com.au"]),
        ("co.uk", []),
        # A suffix the list does not know counts as one label.
        ("it.corp.internal", ["it.corp.internal", "corp.internal"]),
    ],
)
def test_parents_stop_at_the_registrable_domain_of_the_public_suffix_list(domain, parents):
    assert candidate_domains(domain) == parents


@pytest.mark.parametrize(
    "domain", ["seznam.cz", "libero.it", "wp.pl", "t-online.de", "mail.rr.com"]
)
def test_the_maintained_free_mail_list_is_free_mail(domain):
    assert is_free_mail(domain)
    assert match_account(f"jo@{domain}", [AccountDomains("001", (domain,))]).how == "none_free_mail"


@pytest.mark.parametrize("domain", ["salesforce.com", "hubspot.com", "acme.co.th"])
def test_a_company_domain_is_not_free_mail(domain):
    assert not is_free_mail(domain)
