"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright;
no browser is ever downloaded): every page loads without a console error or a failed
request, its charts are drawn with data, and pausing a rep in the page pauses it in the
router. With ``CONSOLE_SCREENSHOTS=<dir>`` the pages are also saved as PNG there (how
docs/images/ is made)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    sync_playwright,
)

from .console_system import System, poll

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOW_TO_INSTALL = (
    "the browser tests need Debian's chromium: `apt-get install -y chromium` (make test "
    "and deploy/local/bootstrap.sh install it), or set CHROMIUM to its path"
)
PAGES = {
    "routing": "/routing",
    "attribution": "/attribution",
    "renewals": "/renewals?weeks=4",
    "health": "/health",
}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(f"no chromium at {CHROMIUM}: {HOW_TO_INSTALL}", pytrace=False)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    yield launched
    launched.close()


class Problems:
    """Everything the browser complains about while a test runs."""

    def __init__(self, page: Page) -> None:
        self.found: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"page error: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on(
            "response",
            lambda r: self.found.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )

    def _request_failed(self, request: Request) -> None:
        # The browser cancels what the page it leaves still loads (its favicon, say) when
        # the test goes to the next page: not a failure of either page.
        if request.failure != "net::ERR_ABORTED":
            self.found.append(f"request failed: {request.url} ({request.failure})")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.found.append(f"console {message.type}: {message.text}")


def sign_in(page: Page, system: System, token: str) -> None:
    page.goto(f"{system.console}/routing")
    assert page.url.startswith(f"{system.console}/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{system.console}/routing")


@pytest.fixture
def admin_page(browser: Browser, system: System) -> Iterator[tuple[Page, Problems]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = Problems(page)
    sign_in(page, system, "dev-admin-token")
    yield page, problems
    context.close()


@pytest.mark.parametrize("name", sorted(PAGES))
def test_each_page_loads_without_errors_and_draws_its_charts(
    admin_page: tuple[Page, Problems], system: System, name: str
) -> None:
    page, problems = admin_page
    response = page.goto(system.console + PAGES[name])
    assert response is not None and response.status == 200
    page.wait_for_load_state("load")
    assert problems.found == []
    assert page.locator("h1").first.inner_text().startswith(name.capitalize()[:6])
    # The stylesheet applied: the header is the brand's colour, not the browser's white.
    header = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
    assert header == "rgb(11, 61, 92)"
    if name != "health":
        charts = page.locator("svg.chart")
        assert charts.count() >= 1
        values = page.eval_on_selector_all(
            "svg.chart [data-value]", "els => els.map(e => Number(e.dataset.value))"
        )
        assert values and max(values) > 0, f"{name}: no chart has data"
    else:
        assert page.locator("tr[data-service] .pill.ok", has_text="ready").count() == 4
    if os.environ.get("CONSOLE_SCREENSHOTS"):
        folder = Path(os.environ["CONSOLE_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"console-{name}.png"), full_page=True)


def test_an_admin_pauses_a_rep_in_the_page_and_the_router_has_it_paused(
    admin_page: tuple[Page, Problems], system: System
) -> None:
    page, problems = admin_page
    rep = "005AE00ALEX"
    assert system.api("router", f"/reps/{rep}")["paused"] is False
    page.goto(f"{system.console}/routing#roster")
    row = page.locator(f'tr[data-rep="{rep}"]')
    row.locator('button[value="pause"]').click()
    page.wait_for_url(re.compile(r".*/routing#roster$"))
    assert "paused" in page.locator(".flash.ok").inner_text()

    def paused() -> None:
        assert system.api("router", f"/reps/{rep}")["paused"] is True

    poll(paused, what="the router has the rep paused")
    page.reload()
    assert row.locator(".state").inner_text().startswith("paused")
    row.locator('button[value="resume"]').click()
    page.wait_for_url(re.compile(r".*/routing#roster$"))
    poll(lambda: _not_paused(system, rep), what="the router has the rep back")
    assert problems.found == []


def _not_paused(system: System, rep: str) -> None:
    assert system.api("router", f"/reps/{rep}")["paused"] is False


def test_a_read_only_session_sees_the_roster_without_buttons(
    browser: Browser, system: System
) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems = Problems(page)
    sign_in(page, system, "dev-read-token")
    assert page.locator("header .badge").inner_text() == "Read only"
    assert page.locator("tr[data-rep]").count() >= 3
    assert page.locator('tr[data-rep] button[value="pause"]').count() == 0
    assert page.locator("#add-rep").count() == 0
    assert problems.found == []
    context.close()


def test_the_lists_render_as_tables_with_rows_and_their_totals(
    admin_page: tuple[Page, Problems], system: System
) -> None:
    page, problems = admin_page
    page.goto(f"{system.console}/renewals")
    opportunities = system.api("renewals", "/opportunities")
    accounts = system.api("renewals", "/accounts")
    for rows, listed in (
        ("#opportunities tr[data-opportunity]", opportunities),
        ("#accounts tr[data-account]", accounts),
    ):
        assert page.locator(rows).count() == min(listed["total"], 25) >= 4, rows
    pager = page.locator('nav.pager[aria-label="opportunities-list pages"]')
    assert pager.get_attribute("data-total") == str(opportunities["total"])
    # Choosing a forecast category in the page narrows the table to it.
    page.select_option('select[name="category"]', "Commit")
    page.locator('#opportunities-list + form button[type="submit"]').click()
    page.wait_for_url(re.compile(r".*category=Commit.*"))
    commit = system.api("renewals", "/opportunities", forecast_category="Commit")
    shown = page.locator("#opportunities tr[data-opportunity]")
    assert shown.count() == commit["total"] >= 2
    assert set(shown.locator("td:nth-child(6)").all_inner_texts()) == {"Commit"}
    page.goto(f"{system.console}/attribution")
    campaigns = system.api("attribution", "/campaigns")
    campaign_rows = page.locator("#campaign-list tr[data-campaign]")
    assert campaign_rows.count() == min(campaigns["total"], 25) >= 2
    first = campaign_rows.first.get_attribute("data-campaign")
    assert first == campaigns["items"][0]["campaign_id"]
    assert problems.found == []
