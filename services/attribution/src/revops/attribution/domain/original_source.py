"""Original source: the first page seen and its referrer, bucketed as HubSpot does.

HubSpot's buckets (its `hs_analytics_source` property): a tracking URL's UTM
parameters decide first (email, paid search, paid social, organic social, other
campaigns); without them the referrer decides (search engine, social network, any
other site); nothing at all is direct traffic; a record created in the CRM, by an
import or through the API before any tracked visit is offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit


class OriginalSource(StrEnum):
    ORGANIC_SEARCH = "ORGANIC_SEARCH"
    PAID_SEARCH = "PAID_SEARCH"
    EMAIL_MARKETING = "EMAIL_MARKETING"
    SOCIAL_MEDIA = "SOCIAL_MEDIA"
    PAID_SOCIAL = "PAID_SOCIAL"
    REFERRALS = "REFERRALS"
    OTHER_CAMPAIGNS = "OTHER_CAMPAIGNS"
    DIRECT_TRAFFIC = "DIRECT_TRAFFIC"
    OFFLINE = "OFFLINE"


@dataclass(frozen=True)
class SourceBucketRules:
    """Which mediums and sites mean what. Site names are matched without their public
    suffix (``google`` matches google.com, google.co.uk and www.google.de)."""

    paid_mediums: frozenset[str] = frozenset(
        {"cpc", "ppc", "paid", "paidsearch", "paid_search", "paid-search", "sem", "cpm", "cpv"}
    )
    paid_social_mediums: frozenset[str] = frozenset(
        {"paid_social", "paidsocial", "paid-social", "social_paid", "social-paid", "socialpaid"}
    )
    email_mediums: frozenset[str] = frozenset({"email", "e-mail", "e_mail", "mail", "newsletter"})
    social_mediums: frozenset[str] = frozenset(
        {"social", "social-media", "social_media", "socialmedia", "sm", "organic_social"}
    )
    search_engines: frozenset[str] = frozenset(
        {
            "google",
            "bing",
            "yahoo",
            "duckduckgo",
            "baidu",
            "yandex",
            "ecosia",
            "ask",
            "aol",
            "naver",
            "seznam",
            "qwant",
            "startpage",
            "brave",
            "kagi",
        }
    )
    social_sites: frozenset[str] = frozenset(
        {
            "facebook",
            "fb",
            "instagram",
            "linkedin",
            "lnkd",
            "twitter",
            "t",  # t.co, Twitter's link shortener
            "x",
            "youtube",
            "youtu",
            "reddit",
            "pinterest",
            "tiktok",
            "quora",
            "tumblr",
            "snapchat",
            "threads",
            "mastodon",
            "bsky",
        }
    )
    # Our own sites: a referrer from them is navigation, not a source.
    own_domains: frozenset[str] = frozenset()
    # Ad click ids that auto-tagging appends: paid even without utm_medium.
    paid_search_click_ids: frozenset[str] = frozenset({"gclid", "msclkid", "dclid", "gbraid"})
    paid_social_click_ids: frozenset[str] = frozenset({"li_fat_id", "ttclid", "twclid"})
    # HubSpot marketing emails append these to every link.
    email_click_ids: frozenset[str] = frozenset({"_hsenc", "_hsmi", "mc_cid", "mkt_tok"})


DEFAULT_BUCKET_RULES = SourceBucketRules()

# Second-level labels under a country code: google.co.uk is "google", not "co".
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "ne", "or", "edu", "go"})


@dataclass(frozen=True)
class SourceBucket:
    """The bucket and HubSpot's first drill-down (engine, network, site or campaign)."""

    source: OriginalSource
    detail: str | None = None


@dataclass(frozen=True)
class _Site:
    name: str
    subdomains: tuple[str, ...] = ()
    host: str = ""


def _site(host: str) -> _Site | None:
    labels = [label for label in host.lower().strip(".").split(".") if label]
    if not labels:
        return None
    if len(labels) == 1:
        return _Site(labels[0], (), host)
    suffix = 1
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        suffix = 2
    return _Site(labels[-suffix - 1], tuple(labels[: -suffix - 1]), host.lower())


def _host(url: str | None) -> str | None:
    if not url:
        return None
    text = url.strip()
    if "//" not in text:
        text = "//" + text  # "google.com/search?q=x" as some trackers store it
    try:
        return urlsplit(text).hostname
    except ValueError:
        return None


def _query(url: str | None) -> Mapping[str, str]:
    if not url:
        return {}
    try:
        parsed = parse_qs(urlsplit(url.strip()).query, keep_blank_values=True)
    except ValueError:
        return {}
    return {key.lower(): values[0].strip() for key, values in parsed.items()}


def _is_own(host: str, rules: SourceBucketRules) -> bool:
    host = host.lower()
    return any(host == d or host.endswith("." + d) for d in rules.own_domains)


def _is_search_engine(site: _Site, rules: SourceBucketRules) -> bool:
    # mail.google.com or mail.yahoo.com is someone's inbox, not a search.
    return site.name in rules.search_engines and "mail" not in site.subdomains


def _is_social(name: str | None, rules: SourceBucketRules) -> bool:
    return name is not None and name.lower() in rules.social_sites


def _source_site_name(utm_source: str | None) -> str | None:
    """`utm_source=linkedin`, `utm_source=linkedin.com` or `utm_source=www.facebook.com`."""
    if not utm_source:
        return None
    site = _site(utm_source) if "." in utm_source else _Site(utm_source.lower())
    return site.name if site else None


def _campaign_bucket(
    params: Mapping[str, str], referrer_site: _Site | None, rules: SourceBucketRules
) -> SourceBucket | None:
    """The bucket a tracking URL decides, or None when it carries no campaign data."""
    medium = params.get("utm_medium", "").lower()
    source_name = _source_site_name(params.get("utm_source"))
    campaign = params.get("utm_campaign") or None
    social = _is_social(source_name, rules) or (
        referrer_site is not None and _is_social(referrer_site.name, rules)
    )
    if medium in rules.email_mediums or any(k in params for k in rules.email_click_ids):
        return SourceBucket(OriginalSource.EMAIL_MARKETING, campaign)
    if medium in rules.paid_social_mediums or any(k in params for k in rules.paid_social_click_ids):
        return SourceBucket(OriginalSource.PAID_SOCIAL, source_name or campaign)
    paid = medium in rules.paid_mediums or any(k in params for k in rules.paid_search_click_ids)
    if paid:
        if social:
            return SourceBucket(OriginalSource.PAID_SOCIAL, source_name or campaign)
        return SourceBucket(OriginalSource.PAID_SEARCH, source_name or campaign)
    if medium in rules.social_mediums:
        return SourceBucket(OriginalSource.SOCIAL_MEDIA, source_name or campaign)
    if any(key.startswith("utm_") and value for key, value in params.items()):
        return SourceBucket(OriginalSource.OTHER_CAMPAIGNS, campaign or source_name)
    return None


def _referrer_bucket(referrer_site: _Site | None, rules: SourceBucketRules) -> SourceBucket:
    if referrer_site is None or _is_own(referrer_site.host, rules):
        return SourceBucket(OriginalSource.DIRECT_TRAFFIC)
    if _is_search_engine(referrer_site, rules):
        return SourceBucket(OriginalSource.ORGANIC_SEARCH, referrer_site.name)
    if _is_social(referrer_site.name, rules):
        return SourceBucket(OriginalSource.SOCIAL_MEDIA, referrer_site.name)
    return SourceBucket(OriginalSource.REFERRALS, referrer_site.host)


def original_source(
    first_url: str | None,
    referrer: str | None,
    *,
    created_offline: bool = False,
    offline_detail: str | None = None,
    rules: SourceBucketRules = DEFAULT_BUCKET_RULES,
) -> SourceBucket:
    """Bucket a person's first page seen and its referrer.

    `created_offline` is true when the record existed before any tracked visit (a
    rep created it, an import, the API): HubSpot keeps OFFLINE then, whatever page
    the person visits later.
    """
    if created_offline:
        return SourceBucket(OriginalSource.OFFLINE, offline_detail)
    referrer_host = _host(referrer)
    referrer_site = _site(referrer_host) if referrer_host else None
    by_campaign = _campaign_bucket(_query(first_url), referrer_site, rules)
    if by_campaign is not None:
        return by_campaign
    return _referrer_bucket(referrer_site, rules)
