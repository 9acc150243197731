"""Salesforce's Pub/Sub API over gRPC: a session's metadata on every call, the event
schemas by id (fetched once each), Subscribe as a stream of fetch requests and responses.

The methods are called through the generated message classes and the service's
descriptor (``proto/``), without generated stubs: grpcio's own channel API is typed."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
import grpc
import grpc.aio

from revops.ingest.stream.proto import pubsub_api_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["PubSub"]
# Salesforce's public endpoint; a sandbox or scratch org uses the same one.
DEFAULT_ENDPOINT = "api.pubsub.salesforce.com:7443"


def method_path(name: str) -> str:
    """``/eventbus.v1.PubSub/Subscribe``: gRPC's path of a method of the proto's service."""
    return f"/{SERVICE.full_name}/{SERVICE.methods_by_name[name].name}"


# (access token, instance URL, org id): the three headers every call carries.
Session = tuple[str, str, str]
SessionSource = Callable[[], Awaitable[Session]]


def call_metadata(session: Session) -> tuple[tuple[str, str], ...]:
    token, instance_url, org_id = session
    return (("accesstoken", token), ("instanceurl", instance_url), ("tenantid", org_id))


class BadPayload(ValueError):
    """An event's bytes do not decode with the schema they name."""


@dataclass(frozen=True)
class EventSchema:
    schema_id: str
    fields: Mapping[str, Any]  # the schema's JSON, parsed
    parsed: Any  # fastavro's form of it

    def decode(self, payload: bytes) -> dict[str, Any]:
        """The event's fields; every byte must belong to the record (trailing bytes mean
        the payload was written with another schema)."""
        buffer = io.BytesIO(payload)
        try:
            record = fastavro.schemaless_reader(buffer, self.parsed, None)
        except (EOFError, ValueError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise BadPayload(
                f"does not decode with schema {self.schema_id}: {exc.__class__.__name__}: {exc}"
            ) from None
        if buffer.tell() != len(payload):
            raise BadPayload(
                f"{len(payload) - buffer.tell()} bytes left after the record of schema "
                f"{self.schema_id}: written with another schema"
            )
        if not isinstance(record, dict):
            raise BadPayload(f"schema {self.schema_id} is not a record")
        return record


def parse_schema(schema_id: str, schema_json: str) -> EventSchema:
    try:
        raw = json.loads(schema_json)
        parsed = fastavro.parse_schema(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise BadPayload(f"schema {schema_id} is not an Avro schema: {exc}") from None
    return EventSchema(schema_id=schema_id, fields=raw, parsed=parsed)


class PubSubClient:
    """One channel to the Pub/Sub API. ``session`` gives the current credentials; a
    schema is asked for once per id (ids are fingerprints: a schema never changes)."""

    def __init__(self, channel: grpc.aio.Channel, session: SessionSource) -> None:
        self._channel = channel
        self._session = session
        self._schemas: dict[str, EventSchema] = {}
        self.schema_requests = 0
        self._get_schema = channel.unary_unary(
            method_path("GetSchema"),
            request_serializer=_schema_request,
            response_deserializer=pb.SchemaInfo.FromString,
        )
        self._subscribe = channel.stream_stream(
            method_path("Subscribe"),
            request_serializer=_fetch_request,
            response_deserializer=pb.FetchResponse.FromString,
        )

    async def schema(self, schema_id: str) -> EventSchema:
        known = self._schemas.get(schema_id)
        if known is not None:
            return known
        metadata = call_metadata(await self._session())
        info = await self._get_schema(pb.SchemaRequest(schema_id=schema_id), metadata=metadata)
        self.schema_requests += 1
        schema = parse_schema(schema_id, info.schema_json)
        self._schemas[schema_id] = schema
        return schema

    async def subscribe(
        self,
    ) -> grpc.aio.StreamStreamCall[pb.FetchRequest, pb.FetchResponse]:
        """A Subscribe call: write fetch requests to it, read responses from it."""
        return self._subscribe(metadata=call_metadata(await self._session()))

    async def close(self) -> None:
        await self._channel.close()


def _schema_request(message: pb.SchemaRequest) -> bytes:
    return message.SerializeToString()


def _fetch_request(message: pb.FetchRequest) -> bytes:
    return message.SerializeToString()


def open_channel(endpoint: str, *, tls: bool) -> grpc.aio.Channel:
    # Keepalive pings: the API sends an empty response at least every 270 s, but a NAT or
    # proxy between may drop an idle connection sooner.
    options = [("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000)]
    if tls:
        return grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(), options=options)
    return grpc.aio.insecure_channel(endpoint, options=options)
