"""The event catalogue as an AsyncAPI 3.0 document, generated from the code that defines
it (``catalogue`` for the events, ``topics`` for the channels), so the document cannot
say anything the code does not. ``revops asyncapi`` writes it; docs/asyncapi.json is the
committed copy, and a test fails when that copy is stale."""

from __future__ import annotations

import inspect
import json
from typing import Any

from pydantic.json_schema import models_json_schema

from revops.events import topics
from revops.events.catalogue import EVENT_CLASSES, SCHEMA_VERSION, Envelope
from revops.events.topics import TopicSpec

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
REF = "#/components/{section}/{name}"


def document() -> dict[str, Any]:
    """The whole AsyncAPI document, as plain data."""
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "revops event bus",
            # The envelope's schema version: the document changes when the events do.
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Every event of the revops event bus and the Kafka topic it travels on, "
                "generated from revops.events.catalogue and revops.events.topics "
                "(`revops asyncapi`). Every event shares one envelope; its `type` decides "
                "its payload, its topic and its partition key."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker `make infra` starts.",
            }
        },
        "channels": {
            spec.base_name: _channel(spec, _events_on(spec)) for spec in topics.ALL_TOPICS
        },
        "components": {
            "messages": {
                event_type: _message(event_type, cls) for event_type, cls in EVENT_CLASSES.items()
            },
            "schemas": _schemas(),
        },
    }


def render() -> str:
    """The document as the committed file holds it."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def _events_on(spec: TopicSpec) -> list[str]:
    return [event_type for event_type, cls in EVENT_CLASSES.items() if cls.topic == spec]


def _channel(spec: TopicSpec, event_types: list[str]) -> dict[str, Any]:
    kept = (
        "kept forever"
        if spec.retention_ms == topics.KEEP_FOREVER
        else f"kept {spec.retention_ms // 86_400_000} days"
    )
    history = (
        "Part of the system's history: every service rebuilds its schema from it."
        if spec.history
        else "Derived by a service, written through its outbox."
    )
    return {
        "address": "{prefix}" + spec.base_name,
        "title": spec.base_name,
        "description": (
            f"{spec.partitions} partition(s), {kept}. {history} Records no consumer can "
            f"process go to `{{prefix}}{spec.dlq_name()}`."
        ),
        "parameters": {
            "prefix": {
                "description": "The deployment's topic prefix (TOPIC_PREFIX), empty by default."
            }
        },
        "messages": {
            event_type: {"$ref": REF.format(section="messages", name=event_type)}
            for event_type in event_types
        },
        "bindings": {
            "kafka": {
                "topic": spec.base_name,
                "partitions": spec.partitions,
                "topicConfiguration": {"retention.ms": spec.retention_ms},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _message(event_type: str, cls: type[Envelope]) -> dict[str, Any]:
    payload_class = cls.model_fields["payload"].annotation
    # Only a docstring of the payload's own, not one it inherits from pydantic.
    own = payload_class.__dict__.get("__doc__") if isinstance(payload_class, type) else None
    summary = inspect.cleandoc(own) if own else None
    message: dict[str, Any] = {
        "name": event_type,
        "title": cls.__name__,
        "contentType": "application/json",
        "payload": {"$ref": REF.format(section="schemas", name=cls.__name__)},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The partition key, from the payload by the type's rule.",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }
    if summary:
        message["summary"] = summary.split("\n\n", 1)[0].replace("\n", " ")
    return message


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(cls, "validation") for cls in EVENT_CLASSES.values()],
        ref_template=REF.format(section="schemas", name="{model}"),
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    return dict(sorted(schemas.items()))
