"""The console in-process, with no service running behind it: sign-in, sessions, CSRF,
what a person types, and a page for a service that does not answer (never a 500)."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from revops.console.main import build_app
from revops.console.settings import ConsoleSettings
from revops.events.production import UnsafeSettings, check_production

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def closed_port() -> int:
    # A port nothing listens on: bound, then released.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def console() -> AsyncIterator[httpx.AsyncClient]:
    down = f"http://127.0.0.1:{closed_port()}"
    settings = ConsoleSettings(
        ingest_url=down, router_url=down, attribution_url=down, renewals_url=down
    )
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield client


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    csrf = CSRF.search((await client.get("/signin")).text)
    assert csrf
    return await client.post("/signin", data={"csrf": csrf.group(1), "token": token})


async def test_pages_send_a_stranger_to_the_sign_in_form(console):
    answer = await console.get("/renewals?weeks=2")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=/renewals%3Fweeks%3D2"
    assert (await console.get("/")).headers["location"] == "/signin"


async def test_sign_in_needs_the_forms_token_and_a_known_token(console):
    no_csrf = await console.post("/signin", data={"token": "dev-admin-token"})
    assert no_csrf.status_code == 403
    assert (await sign_in(console, "")).status_code == 400
    wrong = await sign_in(console, "dev-admin-tokeN")
    assert wrong.status_code == 401 and "neither the read token nor the admin token" in wrong.text
    right = await sign_in(console, "dev-read-token")
    assert right.status_code == 303 and right.headers["location"] == "/routing"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "dev-read-token" not in right.headers["set-cookie"]  # the role, not the token


async def test_a_service_that_does_not_answer_gets_a_page_naming_it(console):
    await sign_in(console, "dev-admin-token")
    for path, service in [
        ("/routing", "router"),
        ("/attribution", "attribution"),
        ("/renewals", "renewals"),
    ]:
        answer = await console.get(path)
        assert answer.status_code == 503
        assert f"The {service} service is unreachable" in answer.text
        assert "refused the connection" in answer.text
    health = await console.get("/health")
    assert health.status_code == 200
    assert health.text.count('<span class="pill alert">unreachable</span>') == 4


async def test_bad_input_is_refused_before_any_service_is_called(console):
    await sign_in(console, "dev-read-token")
    answer = await console.get("/attribution", params={"from": "3/12/2026"})
    assert answer.status_code == 400
    assert "from: must be a date like 2026-12-03" in answer.text


async def test_admin_actions_need_an_admin_session_and_the_forms_token(console):
    await sign_in(console, "dev-read-token")
    csrf = CSRF.search((await console.get("/signin")).text)
    assert csrf
    read_only = await console.post(
        "/routing/reps/005X", data={"csrf": csrf.group(1), "action": "pause"}
    )
    assert read_only.status_code == 403 and "needs the admin token" in read_only.text
    await sign_in(console, "dev-admin-token")
    stale = await console.post("/routing/reps/005X", data={"csrf": csrf.group(1)})
    assert stale.status_code == 403 and "Form expired" in stale.text  # a new session's token


async def test_every_answer_forbids_other_origins_and_frames(console):
    for path in ("/signin", "/static/console.css", "/nowhere"):
        answer = await console.get(path)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    missing = await console.get("/nowhere")
    assert missing.status_code == 404 and "Not found" in missing.text


async def test_sign_out_ends_the_session(console):
    await sign_in(console, "dev-admin-token")
    csrf = CSRF.search((await console.get("/signin")).text)
    assert csrf
    out = await console.post("/signout", data={"csrf": csrf.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert (await console.get("/health")).status_code == 303


def test_an_exposed_console_refuses_the_public_development_tokens():
    exposed = ConsoleSettings(http_host="0.0.0.0")
    with pytest.raises(UnsafeSettings) as refused:
        check_production(exposed)
    assert "API_TOKEN" in str(refused.value) and "API_READ_TOKEN" in str(refused.value)
    assert "SESSION_SECRET" not in str(refused.value)  # a new random one by default
    check_production(ConsoleSettings(http_host="0.0.0.0", api_token="a", api_read_token="b"))
    check_production(ConsoleSettings())  # loopback, development: the defaults are fine
