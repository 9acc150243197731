"""Every page's title is plain text: what a page puts in its title block lands in the
browser tab, where markup shows as its source."""

from pathlib import Path

import pytest

from revops.console.pages import templates

PAGES = sorted(
    p.name
    for p in (Path(templates.env.loader.searchpath[0])).glob("*.html")  # type: ignore[union-attr]
    if not p.name.startswith("_") and p.name != "base.html"
)


# What the two pages whose title names something are given.
CONTEXT = {"title": "Not found", "problem": {"service": "router"}}


def test_there_are_pages_to_check() -> None:
    assert {"renewals.html", "attribution.html"} <= set(PAGES)


@pytest.mark.parametrize("name", PAGES)
def test_a_pages_title_is_one_line_of_text(name: str) -> None:
    template = templates.env.get_template(name)
    block = template.blocks.get("title")
    assert block is not None, f"{name} has no title block"
    title = "".join(block(template.new_context(CONTEXT)))
    assert title.strip() and "<" not in title and "\n" not in title.strip(), (name, title)
