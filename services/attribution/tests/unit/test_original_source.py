import pytest

from revops.attribution.domain.original_source import (
    OriginalSource,
    SourceBucketRules,
    original_source,
)

S = OriginalSource


@pytest.mark.parametrize(
    ("url", "referrer", "expected"),
    [
        # Paid search: utm_medium cpc/ppc/paid, or an auto-tagged click id.
        (
            "https://about.sourcegraph.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand",
            "https://www.google.com/",
            S.PAID_SEARCH,
        ),
        (
            "https://about.sourcegraph.com/pricing?utm_source=bing&utm_medium=ppc",
            None,
            S.PAID_SEARCH,
        ),
        ("https://about.sourcegraph.com/?utm_medium=Paid&utm_source=adwords", None, S.PAID_SEARCH),
        (
            "https://about.sourcegraph.com/?gclid=EAIaIQobChMI8tXk",
            "https://www.google.de/",
            S.PAID_SEARCH,
        ),
        ("https://about.sourcegraph.com/?msclkid=4f2a9c", None, S.PAID_SEARCH),
        # Paid social: a paid medium on a social network, or a paid-social medium.
        (
            "https://info.sourcegraph.com/ebook?utm_source=linkedin&utm_medium=cpc&utm_campaign=q3",
            "https://www.linkedin.com/",
            S.PAID_SOCIAL,
        ),
        (
            "https://info.sourcegraph.com/ebook?utm_source=facebook.com&utm_medium=paid",
            None,
            S.PAID_SOCIAL,
        ),
        (
            "https://info.sourcegraph.com/ebook?utm_source=twitter&utm_medium=paid_social",
            None,
            S.PAID_SOCIAL,
        ),
        ("https://info.sourcegraph.com/ebook?li_fat_id=9a7b6c", None, S.PAID_SOCIAL),
        # Email marketing: email medium or HubSpot's email tracking parameters.
        (
            "https://about.sourcegraph.com/blog?utm_medium=email&utm_source=hs_email",
            None,
            S.EMAIL_MARKETING,
        ),
        ("https://about.sourcegraph.com/blog?utm_medium=E-mail", None, S.EMAIL_MARKETING),
        (
            "https://about.sourcegraph.com/blog?_hsenc=p2ANqtz-8xY&_hsmi=123456",
            "https://mail.google.com/",
            S.EMAIL_MARKETING,
        ),
        # Organic social with a social medium, other campaigns for any other UTM.
        (
            "https://about.sourcegraph.com/?utm_source=reddit&utm_medium=social",
            None,
            S.SOCIAL_MEDIA,
        ),
        (
            "https://about.sourcegraph.com/?utm_source=partner&utm_medium=banner",
            None,
            S.OTHER_CAMPAIGNS,
        ),
        ("https://about.sourcegraph.com/?utm_campaign=launch-week", None, S.OTHER_CAMPAIGNS),
        # No campaign data: the referrer decides.
        ("https://about.sourcegraph.com/", "https://www.google.com/", S.ORGANIC_SEARCH),
        (
            "https://about.sourcegraph.com/",
            "https://www.google.co.uk/search?q=code+search",
            S.ORGANIC_SEARCH,
        ),
        (
            "https://about.sourcegraph.com/",
            "https://www.bing.com/search?q=sourcegraph",
            S.ORGANIC_SEARCH,
        ),
        ("https://about.sourcegraph.com/", "https://duckduckgo.com/", S.ORGANIC_SEARCH),
        (
            "https://about.sourcegraph.com/",
            "https://search.yahoo.co.jp/search?p=x",
            S.ORGANIC_SEARCH,
        ),
        ("https://about.sourcegraph.com/", "https://search.brave.com/search?q=x", S.ORGANIC_SEARCH),
        ("https://about.sourcegraph.com/", "https://l.facebook.com/l.php?u=x", S.SOCIAL_MEDIA),
        ("https://about.sourcegraph.com/", "https://www.linkedin.com/feed/", S.SOCIAL_MEDIA),
        ("https://about.sourcegraph.com/", "https://t.co/AbCdEf", S.SOCIAL_MEDIA),
        ("https://about.sourcegraph.com/", "https://x.com/sourcegraph", S.SOCIAL_MEDIA),
        ("https://about.sourcegraph.com/", "https://www.reddit.com/r/programming/", S.SOCIAL_MEDIA),
        ("https://about.sourcegraph.com/", "https://youtu.be/dQw4w9WgXcQ", S.SOCIAL_MEDIA),
        ("https://about.sourcegraph.com/", "https://news.ycombinator.com/item?id=1", S.REFERRALS),
        (
            "https://about.sourcegraph.com/",
            "https://github.com/sourcegraph/sourcegraph",
            S.REFERRALS,
        ),
        # A webmail inbox is not a search engine.
        ("https://about.sourcegraph.com/", "https://mail.google.com/mail/u/0/", S.REFERRALS),
        # Nothing at all: direct.
        ("https://about.sourcegraph.com/", None, S.DIRECT_TRAFFIC),
        (None, None, S.DIRECT_TRAFFIC),
        ("", "", S.DIRECT_TRAFFIC),
        (None, "https://www.google.com/", S.ORGANIC_SEARCH),
        # Garbage does not crash: it is what it is, no campaign data.
        ("not a url", "::::", S.DIRECT_TRAFFIC),
    ],
)
def test_buckets(url: str | None, referrer: str | None, expected: OriginalSource) -> None:
    assert original_source(url, referrer).source == expected


def test_offline_wins_over_any_url() -> None:
    bucket = original_source(
        "https://about.sourcegraph.com/?utm_medium=cpc",
        "https://www.google.com/",
        created_offline=True,
        offline_detail="IMPORT",
    )
    assert bucket.source == S.OFFLINE
    assert bucket.detail == "IMPORT"


def test_drill_down_names_the_engine_site_or_campaign() -> None:
    assert original_source("https://a.io/", "https://www.google.com/").detail == "google"
    assert original_source("https://a.io/", "https://github.com/x").detail == "github.com"
    campaign = original_source("https://a.io/?utm_campaign=launch&utm_medium=email", None)
    assert campaign.detail == "launch"


def test_own_sites_as_referrer_are_direct_traffic() -> None:
    rules = SourceBucketRules(own_domains=frozenset({"sourcegraph.com"}))
    referred = original_source(
        "https://sourcegraph.com/sign-up", "https://about.sourcegraph.com/", rules=rules
    )
    assert referred.source == S.DIRECT_TRAFFIC
    assert original_source("https://sourcegraph.com/", "https://about.sourcegraph.com/").source == (
        S.REFERRALS
    )


def test_a_referrer_without_scheme_is_still_understood() -> None:
    assert original_source(None, "www.google.com/search?q=x").source == S.ORGANIC_SEARCH
