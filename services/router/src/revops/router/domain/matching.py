"""Lead-to-account matching by the email's domain."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Literal
from urllib.parse import urlsplit

import tldextract

MatchKind = Literal["exact_domain", "parent_domain", "company_name", "none_free_mail", "none"]

# Personal mailboxes say nothing about the employer, so they never match an account: the
# maintained list shipped in ``revops/router/data`` (data/README.md) and these, which
# were here first.
_KNOWN_FREE_MAIL: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "yahoo.co.jp",
        "ymail.com",
        "rocketmail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "mail.ru",
        "yandex.com",
        "yandex.ru",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "tutanota.com",
        "qq.com",
        "163.com",
        "126.com",
        "naver.com",
        "comcast.net",
        "verizon.net",
        "att.net",
        "orange.fr",
        "free.fr",
        "btinternet.com",
    }
)


def _shipped_free_mail() -> frozenset[str]:
    shipped = resources.files("revops.router").joinpath("data", "free_mail_domains.json")
    return frozenset(normalise_domain(d) for d in json.loads(shipped.read_text("utf-8")))


# The Public Suffix List as tldextract ships it: no URL to fetch, no cache to write, so
# routing never reaches for the network and answers the same on every machine.
_SUFFIXES = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@dataclass(frozen=True)
class AccountDomains:
    account_id: str
    domains: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True)
class AccountMatch:
    account_id: str | None
    how: MatchKind
    domain: str | None  # the email's domain, normalised
    matched_domain: str | None = None  # the account domain that matched
    score: float | None = None  # company_name: the name's score (0-100)

    @property
    def matched(self) -> bool:
        return self.account_id is not None


def normalise_domain(value: str) -> str:
    """A host name as accounts store it: lower case, no scheme, path, port or ``www.``."""
    text = value.strip().lower()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    else:
        text = text.split("/", 1)[0].split(":", 1)[0]
    text = text.strip(".")
    if text.startswith("www."):
        text = text[4:]
    return text


FREE_MAIL_DOMAINS: frozenset[str] = _KNOWN_FREE_MAIL | _shipped_free_mail()


def email_domain(email: str) -> str | None:
    local, sep, domain = email.strip().rpartition("@")
    if not sep or not local or not domain:
        return None
    return normalise_domain(domain) or None


def candidate_domains(domain: str) -> list[str]:
    """The domain and its parents, most specific first, stopping at a registrable domain.

    ``eu.sales.acme.co.uk`` -> ``[eu.sales.acme.co.uk, sales.acme.co.uk, acme.co.uk]``.
    The database layer looks these up; ``match_account`` then picks the most specific.
    """
    return list(_candidate_domains(domain))


@functools.lru_cache(maxsize=4096)
def _candidate_domains(domain: str) -> tuple[str, ...]:
    # Routing a batch asks for the same few domains again and again.
    name = normalise_domain(domain)
    labels = name.split(".")
    # "acme.co.uk": co.uk is a registry, nobody's domain. A suffix the list does not know
    # ("corp.internal") counts as one label, as a top-level domain would.
    suffix = _SUFFIXES(name).suffix
    suffix_labels = len(suffix.split(".")) if suffix else 1
    return tuple(".".join(labels[start:]) for start in range(len(labels) - suffix_labels))


def is_free_mail(domain: str, free_mail: frozenset[str] = FREE_MAIL_DOMAINS) -> bool:
    return any(candidate in free_mail for candidate in candidate_domains(domain))


def match_account(
    email: str,
    accounts: Iterable[AccountDomains],
    free_mail: frozenset[str] = FREE_MAIL_DOMAINS,
) -> AccountMatch:
    """The account whose domain is the email's domain or its closest parent.

    Two accounts claiming the same domain is a data problem in the CRM; the smallest
    account id wins so that the answer never depends on the order rows were loaded in.
    """
    domain = email_domain(email)
    if domain is None:
        return AccountMatch(None, "none", None)
    if is_free_mail(domain, free_mail):
        return AccountMatch(None, "none_free_mail", domain)
    owners: dict[str, list[str]] = {}
    for account in accounts:
        for account_domain in account.domains:
            owners.setdefault(normalise_domain(account_domain), []).append(account.account_id)
    for depth, candidate in enumerate(candidate_domains(domain)):
        if candidate in owners and candidate not in free_mail:
            how: MatchKind = "exact_domain" if depth == 0 else "parent_domain"
            return AccountMatch(min(owners[candidate]), how, domain, candidate)
    return AccountMatch(None, "none", domain)
