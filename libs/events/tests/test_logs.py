import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from revops.events.logs import configure_logging, event_context, note_on_request
from revops.events.service import create_app
from revops.events.settings import KafkaSettings


@pytest.fixture(autouse=True)
def logging_as_it_was():
    """configure_logging binds the root handler to this test's captured stdout, which
    pytest closes afterwards: later tests' log lines would fail to write there. Uvicorn's
    loggers as a service runs them (``log_config=None``: they reach the root handler): a
    test that ran a ``uvicorn.Config`` with its default logging before, in this process,
    left them writing to stderr on their own."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    uvicorn = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error")]
    uvicorn_as_it_was = [(u.handlers[:], u.level, u.propagate) for u in uvicorn]
    for logger in uvicorn:
        logger.handlers[:], logger.propagate = [], True
        logger.setLevel(logging.NOTSET)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger, (its_handlers, its_level, propagate) in zip(
        uvicorn, uvicorn_as_it_was, strict=True
    ):
        logger.handlers[:], logger.propagate = its_handlers, propagate
        logger.setLevel(its_level)


def lines_of(out: str, *loggers: str) -> list[dict[str, Any]]:
    """The JSON lines, of the given loggers only when named (a background task of an
    earlier test, still winding down, may log meanwhile)."""
    lines = [json.loads(line) for line in out.splitlines()]
    return [line for line in lines if not loggers or line["logger"] in loggers]


def test_log_lines_are_json_with_the_service_and_the_event_id(capsys):
    configure_logging("router", "INFO")
    log = logging.getLogger("revops.test")
    with event_context("evt-42"):
        log.info("lead routed", extra={"rule": "round_robin"})
    log.info("between events")
    captured = capsys.readouterr()
    assert captured.err == ""  # stdout only
    first, second = lines_of(captured.out, "revops.test")
    assert first["event_id"] == "evt-42"
    assert first["service"] == "router"
    assert first["rule"] == "round_robin"
    assert first["message"] == "lead routed"
    assert "event_id" not in second


def test_times_are_rfc3339_in_utc(capsys):
    configure_logging("router", "INFO")
    before = datetime.now(UTC)
    logging.getLogger("revops.test").info("now")
    [line] = lines_of(capsys.readouterr().out, "revops.test")
    assert line["time"].endswith("Z")
    moment = datetime.fromisoformat(line["time"])
    offset = moment.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert abs((moment - before).total_seconds()) < 5


def test_no_colour_codes(capsys):
    configure_logging("router", "INFO")
    # What uvicorn logs: a plain message, and a coloured copy in `color_message`.
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    logging.getLogger("revops.test").info("\x1b[1mbold\x1b[0m claim")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\u001b" not in out
    first, second = lines_of(out, "uvicorn.error", "revops.test")
    assert "color_message" not in first
    assert first["message"] == "Started server process [42]"
    assert second["message"] == "bold claim"


async def test_each_request_is_one_access_line_with_its_request_id(capsys):
    configure_logging("router", "DEBUG")
    app: FastAPI = create_app(title="t", settings=KafkaSettings())

    @app.get("/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        logging.getLogger("revops.test").info("looking", extra={"thing": thing})
        return {"thing": thing}

    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.get("/things/a", headers={"X-Request-ID": "req-7"})
        missing = await client.get("/nowhere")
        health = await client.get("/healthz")
    assert ok.headers["x-request-id"] == "req-7"
    assert len(missing.headers["x-request-id"]) == 32  # made up when none was sent
    assert health.json()["version"]
    lines = lines_of(capsys.readouterr().out)
    looking = next(line for line in lines if line["message"] == "looking")
    assert looking["request_id"] == "req-7"  # every line of the request carries it
    access = [line for line in lines if line["logger"] == "revops.access"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("GET", "/things/a", 200),
        ("GET", "/nowhere", 404),
        ("GET", "/healthz", 200),
    ]
    assert access[0]["request_id"] == "req-7"
    assert access[1]["request_id"] == missing.headers["x-request-id"]
    assert access[0]["client"] == "10.1.2.3"
    assert all(isinstance(a["duration_ms"], float) and a["duration_ms"] >= 0 for a in access)
    assert access[0]["level"] == "INFO" and access[2]["level"] == "DEBUG"


async def test_what_a_handler_notes_joins_its_request_line_and_no_other(capsys):
    configure_logging("ingest", "INFO")
    app: FastAPI = create_app(title="t", settings=KafkaSettings())

    @app.post("/webhooks/{source}")
    async def webhook(source: str) -> dict[str, bool]:
        return {"noted": note_on_request(source=source, events=3)}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.post("/webhooks/hubspot")
        plain = await client.get("/nowhere")
    assert first.json() == {"noted": True}
    assert plain.status_code == 404
    lines = lines_of(capsys.readouterr().out)
    noted, other = [line for line in lines if line["logger"] == "revops.access"][:2]
    assert (noted["path"], noted["source"], noted["events"]) == ("/webhooks/hubspot", "hubspot", 3)
    assert "source" not in other and "events" not in other
    # Outside a request (or with the access log off) the caller is told to log its own line.
    assert note_on_request(source="x") is False
