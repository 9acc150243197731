"""Matching a lead to an account by the company name it gave, when its email's domain
matched none (personal mail, a domain the account never listed).

Names are compared normalised (accents, case, punctuation, "&", a leading "the" and
legal suffixes such as Inc., GmbH or S.A. do not count) and scored with rapidfuzz's
``token_sort_ratio`` (0-100; word order does not count, extra words do). Below the
threshold there is no match: "Acme" is not "Acme Bank", "General Motors" is not
"General Mills".
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

DEFAULT_THRESHOLD = 90.0

# The legal forms companies add to their names, normalised (dots and case removed).
LEGAL_SUFFIXES: frozenset[str] = frozenset(
    {
        "inc", "incorporated", "corp", "corporation", "co", "company", "cos", "llc", "llp",
        "lp", "ltd", "limited", "plc", "pllc", "pc", "gmbh", "mbh", "ag", "kg", "kgaa",
        "ohg", "ug", "ev", "se", "sa", "sas", "sasu", "sarl", "eurl", "sca", "snc", "sl",
        "slu", "srl", "spa", "sapa", "bv", "nv", "vof", "cv", "ab", "oy", "oyj", "as", "asa",
        "aps", "a/s", "hf", "kk", "yk", "gk", "pty", "pvt", "pte", "bhd", "sdn", "tbk",
        "pt", "sro", "spzoo", "zoo", "doo", "dd", "ad", "ood", "eood", "zrt", "kft", "nyrt",
        "group", "holding", "holdings",
    }
)  # fmt: skip
# Words joined to a legal form ("pty ltd", "sp. z o.o.") are dropped with it.
_JOINED = re.compile(r"\b(sp z oo|s de rl|s de rl de cv|sa de cv|co kg|gmbh co kg)$")


@functools.lru_cache(maxsize=65536)
def normalise_company(name: str) -> str:
    """The name as names are compared: "The Procter & Gamble Co." -> "procter and gamble"."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ")
    text = re.sub(r"[.'\u2019]", "", text)  # S.A. -> sa, O'Reilly -> oreilly
    text = re.sub(r"[^\w]+", " ", text).strip()
    text = _JOINED.sub("", text).strip()
    words = text.split()
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    if len(words) > 1 and words[0] == "the":
        words.pop(0)
    return " ".join(words)


def blocking_key(normalised: str) -> str:
    """The word a candidate must share with the name to be scored at all (its first), so
    a lead is scored against a few accounts, not all of them."""
    return normalised.split(" ", 1)[0]


@dataclass(frozen=True)
class NamedAccount:
    account_id: str
    name: str


@dataclass(frozen=True)
class NameMatch:
    account_id: str
    account_name: str
    score: float  # 0-100


@dataclass
class NameIndex:
    """Accounts by normalised name, for scoring a batch's company names."""

    by_key: dict[str, list[NamedAccount]] = field(default_factory=dict)
    by_block: dict[str, list[str]] = field(default_factory=dict)  # blocking key -> keys

    def add(self, key: str, account: NamedAccount) -> None:
        """An account under its normalised name (``normalise_company``)."""
        if key not in self.by_key:
            self.by_key[key] = []
            self.by_block.setdefault(blocking_key(key), []).append(key)
        self.by_key[key].append(account)

    @classmethod
    def of(cls, accounts: Iterable[NamedAccount]) -> NameIndex:
        index = cls()
        for account in accounts:
            key = normalise_company(account.name)
            if key:
                index.add(key, account)
        return index


def match_company(
    company: str | None, index: NameIndex, threshold: float = DEFAULT_THRESHOLD
) -> NameMatch | None:
    """The account whose name scores highest against ``company``, at or above
    ``threshold``; a tie goes to the smallest account id (never the rows' order)."""
    key = normalise_company(company) if company else ""
    if not key:
        return None
    candidates = index.by_block.get(blocking_key(key), [])
    if key in index.by_key:
        best_key, score = key, 100.0
    else:
        found = process.extractOne(
            key, candidates, scorer=fuzz.token_sort_ratio, score_cutoff=threshold
        )
        if found is None:
            return None
        best_key, score = found[0], float(found[1])
        # extractOne keeps the first of equal scores: settle ties by the smallest id.
        tied = [k for k in candidates if fuzz.token_sort_ratio(key, k) == found[1]]
        best_key = min(tied, key=lambda k: min(a.account_id for a in index.by_key[k]))
    account = min(index.by_key[best_key], key=lambda a: a.account_id)
    return NameMatch(account.account_id, account.name, round(score, 1))
