"""The one place the console reads the services' HTTP APIs.

Every request and every answer's shape is handled here, so that when an API's envelope or
field formats change, only this module changes: pages get plain lists and dicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from revops.console.settings import ConsoleSettings

SERVICES = ("ingest", "router", "attribution", "renewals")


class ServiceUnreachable(Exception):
    """A service did not answer (refused, timed out) or answered with a server error."""

    def __init__(self, service: str, url: str, why: str) -> None:
        super().__init__(f"{service} at {url}: {why}")
        self.service, self.url, self.why = service, url, why


class ApiRefused(Exception):
    """A service refused a request (4xx); ``message`` says why, naming the field."""

    def __init__(self, service: str, status: int, message: str) -> None:
        super().__init__(f"{service} answered {status}: {message}")
        self.service, self.status, self.message = service, status, message


def refusal_message(body: Any) -> str:
    """A FastAPI refusal as one sentence: ``{"detail": "..."}`` or its 422 list of
    ``{"loc": [...], "msg": ...}`` (the field named by the last part of ``loc``)."""
    detail = body.get("detail") if isinstance(body, Mapping) else body
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if not isinstance(item, Mapping):
                continue
            loc = [str(x) for x in item.get("loc", ()) if x not in ("body", "query", "path")]
            name = ".".join(loc)
            msg = str(item.get("msg", "invalid"))
            parts.append(f"{name}: {msg}" if name else msg)
        if parts:
            return "; ".join(parts)
    return "the request was refused"


def items_of(page: Any) -> list[Any]:
    """The items of a list answer: every list comes in one envelope (docs/API.md),
    ``{"items": [...], "total": N, "limit": L, "offset": O}``."""
    if isinstance(page, Mapping) and isinstance(page.get("items"), list):
        return list(page["items"])
    return []


@dataclass(frozen=True)
class Listed:
    """One page of a list: its items, and how many the whole list holds (the envelope's
    ``total``; the items counted when a service leaves it out)."""

    items: list[dict[str, Any]]
    total: int


def listed(page: Any) -> Listed:
    items = [dict(i) for i in items_of(page) if isinstance(i, Mapping)]
    total = page.get("total") if isinstance(page, Mapping) else None
    return Listed(items, total if isinstance(total, int) else len(items))


@dataclass
class ServiceHealth:
    name: str
    url: str
    reachable: bool
    ready: bool = False
    checks: dict[str, str] = field(default_factory=dict)
    lag_by_topic: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    outbox_pending: int = 0
    problem: str = ""

    @property
    def lag(self) -> int:
        return sum(self.lag_by_topic.values())


def read_metrics(text: str, prefix: str) -> tuple[dict[str, int], int, int]:
    """From a service's Prometheus text: consumer lag summed per topic (without the
    test or environment prefix), events dead-lettered since the process started, and
    outbox rows pending."""
    lag: dict[str, int] = {}
    dead = pending = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "revops_consumer_lag":
                topic = sample.labels.get("topic", "?").removeprefix(prefix)
                lag[topic] = lag.get(topic, 0) + int(sample.value)
            elif sample.name == "revops_events_dead_lettered_total":
                dead += sample.value
            elif sample.name == "revops_outbox_pending":
                pending += sample.value
    return dict(sorted(lag.items())), int(dead), int(pending)


class ServiceApi:
    """One service's API, called with the token of the signed-in person's role."""

    def __init__(self, name: str, base_url: str, http: httpx.AsyncClient) -> None:
        self.name, self.base_url, self._http = name, base_url.rstrip("/"), http

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        expect_json: bool = True,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._http.request(
                method, self.base_url + path, params=params, json=json, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ServiceUnreachable(self.name, self.base_url, "did not answer in time") from exc
        except httpx.TransportError as exc:
            raise ServiceUnreachable(self.name, self.base_url, "refused the connection") from exc
        if response.status_code >= 500 and path != "/readyz":
            raise ServiceUnreachable(
                self.name, self.base_url, f"answered {response.status_code} (a server error)"
            )
        if response.status_code in (401, 403) and token:
            raise ApiRefused(
                self.name,
                response.status_code,
                "the service refused the console's token: the console's API_TOKEN and "
                "API_READ_TOKEN must be the services' own",
            )
        if 400 <= response.status_code < 500:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise ApiRefused(self.name, response.status_code, refusal_message(body))
        if not expect_json:
            return response.text
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceUnreachable(
                self.name, self.base_url, "answered something not JSON"
            ) from exc


class Services:
    """The four services' APIs and what the console's pages read from them."""

    def __init__(self, settings: ConsoleSettings, http: httpx.AsyncClient | None = None) -> None:
        self.http = http or httpx.AsyncClient(timeout=settings.api_timeout_s)
        self.ingest = ServiceApi("ingest", settings.ingest_url, self.http)
        self.router = ServiceApi("router", settings.router_url, self.http)
        self.attribution = ServiceApi("attribution", settings.attribution_url, self.http)
        self.renewals = ServiceApi("renewals", settings.renewals_url, self.http)
        self.topic_prefix = settings.topic_prefix

    async def aclose(self) -> None:
        await self.http.aclose()

    def by_name(self, name: str) -> ServiceApi:
        api: ServiceApi = getattr(self, name)
        return api

    # --- router ---------------------------------------------------------------------

    async def recent_leads(self, token: str, limit: int) -> list[dict[str, Any]]:
        page = await self.router.call(
            "GET", "/leads", token, params={"limit": limit, "newest_first": "true"}
        )
        return items_of(page)

    async def lead(self, token: str, lead_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.router.call("GET", f"/leads/{lead_id}", token)
        except ApiRefused as refused:
            if refused.status == 404:
                return None
            raise
        return found

    async def queues(self, token: str) -> dict[str, Any]:
        queues: dict[str, Any] = await self.router.call("GET", "/queues", token)
        return queues

    async def waiting_leads(
        self, token: str, queues: Mapping[str, Any], per_queue: int
    ) -> dict[str, list[dict[str, Any]]]:
        """The first leads waiting in each waiting queue, with their details (the queue
        lists only ids), all read at once."""
        names = [str(q.get("name")) for q in queues.get("waiting", [])]
        ids = [
            [str(i) for i in q.get("lead_ids", [])[:per_queue]] for q in queues.get("waiting", [])
        ]
        found = await asyncio.gather(*(self.lead(token, i) for chunk in ids for i in chunk))
        out: dict[str, list[dict[str, Any]]] = {}
        start = 0
        for name, chunk in zip(names, ids, strict=True):
            leads = found[start : start + len(chunk)]
            out[name] = [lead for lead in leads if lead is not None]
            start += len(chunk)
        return out

    async def breaches(self, token: str, since: str, limit: int) -> list[dict[str, Any]]:
        page = await self.router.call(
            "GET", "/sla/breaches", token, params={"since": since, "limit": limit}
        )
        return items_of(page)

    async def reps(self, token: str) -> list[dict[str, Any]]:
        return items_of(await self.router.call("GET", "/reps", token, params={"limit": 500}))

    async def change_rep(self, token: str, rep_id: str, fields: Mapping[str, Any]) -> None:
        await self.router.call("PATCH", f"/reps/{rep_id}", token, json=dict(fields))

    async def add_rep(self, token: str, fields: Mapping[str, Any]) -> None:
        await self.router.call("POST", "/reps", token, json=dict(fields))

    async def assign(self, token: str, lead_id: str, owner_id: str, reason: str) -> None:
        await self.router.call(
            "POST",
            f"/leads/{lead_id}/assign",
            token,
            json={"owner_id": owner_id, "reason": reason},
        )

    async def reroute(self, token: str, lead_id: str) -> dict[str, Any]:
        lead: dict[str, Any] = await self.router.call("POST", f"/leads/{lead_id}/reroute", token)
        return lead

    # --- attribution ----------------------------------------------------------------

    async def pipeline_by_source(
        self, token: str, start: str | None, end: str | None, qualified_only: bool
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"qualified_only": "true" if qualified_only else "false"}
        if start:
            params["from"] = start
        if end:
            params["to"] = end
        report: dict[str, Any] = await self.attribution.call(
            "GET", "/reports/pipeline-by-source", token, params=params
        )
        return report

    async def campaigns(self, token: str, limit: int, offset: int) -> Listed:
        """A page of the campaigns people responded to, by id."""
        params = {"limit": limit, "offset": offset}
        return listed(await self.attribution.call("GET", "/campaigns", token, params=params))

    # --- renewals -------------------------------------------------------------------

    async def pipeline(self, token: str, as_of: str | None = None) -> dict[str, Any]:
        params = {"as_of": as_of} if as_of else None
        figures: dict[str, Any] = await self.renewals.call("GET", "/pipeline", token, params=params)
        return figures

    async def renewals_due(self, token: str, due_before: str, limit: int) -> Listed:
        page = await self.renewals.call(
            "GET", "/renewals", token, params={"due_before": due_before, "limit": limit}
        )
        return listed(page)

    async def opportunities(
        self, token: str, filters: Mapping[str, str | None], limit: int, offset: int
    ) -> Listed:
        """A page of opportunities as they stand, by close date; a filter left at None
        is not sent."""
        params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        params.update(limit=limit, offset=offset)
        return listed(await self.renewals.call("GET", "/opportunities", token, params=params))

    async def accounts(self, token: str, tier: str | None, limit: int, offset: int) -> Listed:
        """A page of the accounts with a known size and their tier, by id."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if tier is not None:
            params["tier"] = tier
        return listed(await self.renewals.call("GET", "/accounts", token, params=params))

    async def snapshots(self, token: str, weeks: int) -> list[dict[str, Any]]:
        """The latest ``weeks`` snapshots with their figures, oldest first."""
        page = await self.renewals.call(
            "GET", "/forecast/snapshots", token, params={"limit": weeks}
        )
        # Each listed snapshot carries its totals by forecast category: one request.
        listed = [s for s in items_of(page) if isinstance(s, Mapping)]
        return sorted((dict(s) for s in listed), key=lambda s: str(s.get("as_of", "")))

    async def next_snapshot_at(self, token: str) -> str | None:
        page = await self.renewals.call("GET", "/forecast/snapshots", token, params={"limit": 1})
        value = page.get("next_scheduled_at") if isinstance(page, Mapping) else None
        return str(value) if value else None

    # --- health ---------------------------------------------------------------------

    async def health(self, name: str) -> ServiceHealth:
        api = self.by_name(name)
        health = ServiceHealth(name=name, url=api.base_url, reachable=True)
        try:
            ready = await api.call("GET", "/readyz", None)
            metrics_text = await api.call("GET", "/metrics", None, expect_json=False)
        except (ServiceUnreachable, ApiRefused) as exc:
            health.reachable = False
            health.problem = exc.why if isinstance(exc, ServiceUnreachable) else exc.message
            return health
        health.ready = isinstance(ready, Mapping) and ready.get("status") == "ready"
        checks = ready.get("checks", {}) if isinstance(ready, Mapping) else {}
        health.checks = {str(k): str(v) for k, v in checks.items()}
        lag, dead, pending = read_metrics(str(metrics_text), self.topic_prefix)
        health.lag_by_topic, health.dead_lettered, health.outbox_pending = lag, dead, pending
        return health

    async def all_health(self, names: Sequence[str] = SERVICES) -> list[ServiceHealth]:
        return list(await asyncio.gather(*(self.health(n) for n in names)))
