"""JSON logs, one object per line, to stdout: RFC 3339 UTC times, no colour codes, the
event id in every line about an event and the request id in every line about a request."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

current_event_id: ContextVar[str | None] = ContextVar("current_event_id", default=None)
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
# What a request's handler adds to its access-log line (a dict the middleware owns: a
# handler's changes reach it whatever context the handler runs in).
_request_fields: ContextVar[dict[str, object] | None] = ContextVar("request_fields", default=None)


# ANSI escape sequences (colours): uvicorn puts coloured copies of its messages in the
# record (``color_message``), and a JSON line must not carry terminal codes.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class _Rfc3339Formatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if hasattr(record, "color_message"):
            del record.color_message
        if isinstance(record.msg, str) and "\x1b" in record.msg:
            record.msg = _ANSI.sub("", record.msg)
        event_id = current_event_id.get()
        if event_id is not None:
            record.event_id = event_id
        request_id = current_request_id.get()
        if request_id is not None:
            record.request_id = request_id
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    # stdout: where a container runtime or a supervisor collects a service's output.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        _Rfc3339Formatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR while a broker restarts.
    logging.getLogger("aiokafka").setLevel(
        logging.CRITICAL if level.upper() != "DEBUG" else "DEBUG"
    )


@contextmanager
def event_context(event_id: str) -> Iterator[None]:
    token = current_event_id.set(event_id)
    try:
        yield
    finally:
        current_event_id.reset(token)


# Probed every few seconds by supervisors and Prometheus: logged at DEBUG, not INFO.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_access = logging.getLogger("revops.access")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's request id (``X-Request-ID``, or HubSpot's), else a new one."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in (b"x-request-id", b"x-hubspot-request-id"):
            found.setdefault(lowered, value)
    supplied = found.get(b"x-request-id") or found.get(b"x-hubspot-request-id")
    if supplied and len(supplied) <= 100:
        text = supplied.decode("latin-1")
        if text.isprintable():
            return text
    return uuid.uuid4().hex


def note_on_request(**fields: object) -> bool:
    """Adds ``fields`` to the running request's access-log line; False when no access log
    runs (the caller logs a line of its own). One line per request instead of two: each
    line costs tens of microseconds of a webhook's few hundred."""
    found = _request_fields.get()
    if found is None:
        return False
    found.update(fields)
    return True


class AccessLog:
    """One JSON line per HTTP request: method, path, status, duration and request id (also
    in every line logged while the request runs, and answered as ``X-Request-ID``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope.get("headers", []))
        token = current_request_id.set(request_id)
        fields: dict[str, object] = {}
        fields_token = _request_fields.set(fields)
        status = 500  # what the client sees if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            _access.log(
                logging.DEBUG if path in QUIET_PATHS else logging.INFO,
                "request",
                extra={
                    "method": scope.get("method", ""),
                    "path": path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                    **fields,
                },
            )
            _request_fields.reset(fields_token)
            current_request_id.reset(token)
