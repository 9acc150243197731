"""`revops-console`: the web console on port 8004. It reads the four services' HTTP
APIs (never their databases) and changes the roster and waiting leads through the
router's API with the admin token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from revops.console import auth
from revops.console.client import ApiRefused, Services, ServiceUnreachable
from revops.console.inputs import InputRefused
from revops.console.pages import render, router, signin_redirect
from revops.console.settings import ConsoleSettings
from revops.events.logs import configure_logging
from revops.events.operator import service_cli
from revops.events.production import check_production

STATIC = Path(__file__).parent / "static"

# Everything the pages need comes from the console itself: no other origin, no inline
# script, no frames.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def build_app(settings: ConsoleSettings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    apis = services or Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await apis.aclose()

    # No OpenAPI document: the console answers people, not programs.
    app = FastAPI(
        title="revops console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = settings
    app.state.services = apis
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie="revops_console",
        max_age=int(settings.session_hours * 3600),
        same_site="strict",
        https_only=settings.secure_cookie,
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        # Ready as soon as it serves: a service that is down is shown on the pages,
        # it does not take the console down with it.
        return {"status": "ready"}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    _handle_errors(app)
    return app


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(auth.SignInNeeded)
    async def needs_sign_in(request: Request, exc: auth.SignInNeeded) -> Response:
        return signin_redirect(request)

    @app.exception_handler(auth.AdminNeeded)
    async def needs_admin(request: Request, exc: auth.AdminNeeded) -> Response:
        message = "this needs the admin token: sign out, then sign in with it"
        return render(request, "error.html", 403, title="Admin only", message=message)

    @app.exception_handler(auth.FormExpired)
    async def form_expired(request: Request, exc: auth.FormExpired) -> Response:
        message = "the form had no valid session token (it expired, or came from another "
        message += "site): reload the page and send it again"
        return render(request, "error.html", 403, title="Form expired", message=message)

    @app.exception_handler(InputRefused)
    async def input_refused(request: Request, exc: InputRefused) -> Response:
        return render(request, "error.html", 400, title="Check what you typed", message=str(exc))

    @app.exception_handler(ServiceUnreachable)
    async def unreachable(request: Request, exc: ServiceUnreachable) -> Response:
        return render(request, "unreachable.html", 503, problem=exc)

    @app.exception_handler(ApiRefused)
    async def refused(request: Request, exc: ApiRefused) -> Response:
        status = 502 if exc.status in (401, 403) else 400
        message = f"the {exc.service} service refused: {exc.message}"
        return render(request, "error.html", status, title="Refused", message=message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = "Not found" if exc.status_code == 404 else "Cannot do that"
        return render(request, "error.html", exc.status_code, title=title, message=str(exc.detail))


def serve_console(settings: ConsoleSettings) -> None:
    check_production(settings)  # an UnsafeSettings is the command line's one-line error
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


# Arguments first (--help and --version touch nothing), then serve; also check-config.
cli = service_cli("console", __doc__, settings=ConsoleSettings, serve=serve_console)


def main() -> None:
    cli()
