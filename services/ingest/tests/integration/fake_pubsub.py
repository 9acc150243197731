"""Salesforce's Pub/Sub API as a local gRPC server on a free port, speaking the published
proto: GetSchema and Subscribe (flow control by num_requested, replay presets, replay ids,
keepalives), with Avro-encoded change events, the session's metadata checked on every
call. Every fetch request is recorded, in order, for the tests to read."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

import fastavro
import grpc
import grpc.aio

from revops.ingest.stream.proto import pubsub_api_pb2 as pb
from revops.ingest.stream.pubsub import SERVICE

TOKEN = "fake-pubsub-session"
INSTANCE_URL = "https://fake-org.my.salesforce.com"
ORG_ID = "00D5g000004ExAmEAK"

_HEADER = {
    "type": "record",
    "name": "ChangeEventHeader",
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {
            "name": "changeType",
            "type": {
                "type": "enum",
                "name": "ChangeType",
                "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE"],
            },
        },
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ],
}


def _nullable(name: str, kind: Any) -> dict[str, Any]:
    return {"name": name, "type": ["null", kind], "default": None}


# Shaped like Salesforce's: the header first, then every field of the object as a nullable
# union; times as epoch-ms longs, one as an Avro timestamp, dates as Avro dates.
OPPORTUNITY_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "OpportunityChangeEvent",
    "namespace": "com.sforce.eventbus",
    "fields": [
        {"name": "ChangeEventHeader", "type": _HEADER},
        _nullable("AccountId", "string"),
        _nullable("Name", "string"),
        _nullable("StageName", "string"),
        _nullable("Amount", "double"),
        _nullable("Probability", "double"),
        _nullable("CloseDate", {"type": "int", "logicalType": "date"}),
        _nullable("Type", "string"),
        _nullable("LeadSource", "string"),
        _nullable("IsClosed", "boolean"),
        _nullable("IsWon", "boolean"),
        _nullable("ForecastCategory", "string"),
        _nullable("ForecastCategoryName", "string"),
        _nullable("OwnerId", "string"),
        _nullable("CreatedDate", "long"),
        _nullable("CreatedById", "string"),
        _nullable("LastModifiedDate", {"type": "long", "logicalType": "timestamp-millis"}),
        _nullable("LastModifiedById", "string"),
    ],
}
OPPORTUNITY_SCHEMA_ID = "opportunity-schema-1"


def encode(schema: Mapping[str, Any], record: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(dict(schema)), dict(record))
    return buffer.getvalue()


def bitmap(schema: Mapping[str, Any], names: list[str]) -> str:
    positions = [f["name"] for f in schema["fields"]]
    return hex(sum(1 << positions.index(name) for name in names))


class FakePubSub:
    def __init__(self) -> None:
        self.schemas: dict[str, str] = {OPPORTUNITY_SCHEMA_ID: json.dumps(OPPORTUNITY_SCHEMA)}
        self.topics: dict[str, list[pb.ConsumerEvent]] = {}
        self.fetch_requests: list[pb.FetchRequest] = []
        self.schema_requests = 0
        self.max_per_response = 3
        self.on_fetch: Callable[[pb.FetchRequest], None] = lambda request: None
        self._serial = 0
        self._changed = asyncio.Condition()
        self._keepalive = False
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def append(self, topic: str, payload: bytes, schema_id: str) -> bytes:
        """An event on the channel; its replay id (opaque bytes, as Salesforce's)."""
        self._serial += 1
        replay_id = b"\x00\x01" + self._serial.to_bytes(8, "big")
        event = pb.ProducerEvent(id=f"evt-{self._serial}", schema_id=schema_id, payload=payload)
        self.topics.setdefault(topic, []).append(pb.ConsumerEvent(event=event, replay_id=replay_id))
        async with self._changed:
            self._changed.notify_all()
        return replay_id

    async def keepalive(self) -> None:
        """Every open subscription gets an empty response with the latest replay id."""
        async with self._changed:
            self._keepalive = True
            self._changed.notify_all()

    async def start(self) -> None:
        server = grpc.aio.server()
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "GetSchema": grpc.unary_unary_rpc_method_handler(
                self._get_schema,
                request_deserializer=pb.SchemaRequest.FromString,
                response_serializer=pb.SchemaInfo.SerializeToString,
            ),
            "Subscribe": grpc.stream_stream_rpc_method_handler(
                self._subscribe,
                request_deserializer=pb.FetchRequest.FromString,
                response_serializer=pb.FetchResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
        )
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)

    async def _check_session(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        metadata = dict(context.invocation_metadata() or ())
        expected = {"accesstoken": TOKEN, "instanceurl": INSTANCE_URL, "tenantid": ORG_ID}
        if any(metadata.get(k) != v for k, v in expected.items()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid session or org")

    async def _get_schema(
        self, request: pb.SchemaRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SchemaInfo:
        await self._check_session(context)
        self.schema_requests += 1
        if request.schema_id not in self.schemas:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no schema {request.schema_id}")
        return pb.SchemaInfo(
            schema_id=request.schema_id, schema_json=self.schemas[request.schema_id]
        )

    def _record(self, request: pb.FetchRequest) -> None:
        self.fetch_requests.append(request)
        self.on_fetch(request)

    async def _subscribe(
        self,
        requests: AsyncIterator[pb.FetchRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.FetchResponse]:
        await self._check_session(context)
        first = await anext(aiter(requests))
        self._record(first)
        events = self.topics.setdefault(first.topic_name, [])
        position = self._start(first, events)
        if position is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "The Replay ID validation failed."
            )
        assert position is not None
        credits = [first.num_requested]

        async def more() -> None:
            async for request in requests:
                self._record(request)
                async with self._changed:
                    credits[0] += request.num_requested
                    self._changed.notify_all()

        reader = asyncio.ensure_future(more())
        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(partial(self._ready, credits, position, events))
                    count = min(credits[0], self.max_per_response, len(events) - position)
                    batch = events[position : position + count]
                    position += count
                    credits[0] -= count
                    self._keepalive = False
                latest = batch[-1].replay_id if batch else (events[-1].replay_id if events else b"")
                yield pb.FetchResponse(
                    events=batch, latest_replay_id=latest, pending_num_requested=credits[0]
                )
        finally:
            reader.cancel()

    def _ready(self, credits: list[int], position: int, events: list[pb.ConsumerEvent]) -> bool:
        return self._keepalive or (credits[0] > 0 and position < len(events))

    @staticmethod
    def _start(first: pb.FetchRequest, events: list[pb.ConsumerEvent]) -> int | None:
        if first.replay_preset == pb.EARLIEST:
            return 0
        if first.replay_preset == pb.CUSTOM:
            ids = [e.replay_id for e in events]
            return ids.index(first.replay_id) + 1 if first.replay_id in ids else None
        return len(events)
