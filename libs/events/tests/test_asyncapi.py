"""The AsyncAPI document: generated from the catalogue and the topics, valid AsyncAPI 3.0,
and committed as generated (the test fails when docs/asyncapi.json is stale)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
from typer.testing import CliRunner

from revops.events import asyncapi, topics
from revops.events.catalogue import EVENT_CLASSES
from revops.events.cli import app

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "asyncapi.json"
SCHEMA = Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.schema.json"
REGENERATE = "uv run revops asyncapi -o docs/asyncapi.json"


def test_the_committed_document_is_what_the_code_generates():
    assert COMMITTED.is_file(), f"docs/asyncapi.json is missing: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == asyncapi.render(), (
        f"docs/asyncapi.json is stale (the catalogue or the topics changed): {REGENERATE}"
    )


def test_the_document_is_valid_asyncapi_3():
    validator = jsonschema_rs.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(asyncapi.document())]
    assert not errors, "\n".join(errors[:20])


def test_the_validation_would_catch_a_broken_document():
    validator = jsonschema_rs.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    broken = asyncapi.document()
    broken["channels"]["revops.forms"]["messages"] = "form.submitted"
    assert not validator.is_valid(broken)


def test_every_topic_is_a_channel_and_every_event_a_message_on_its_topic():
    doc = asyncapi.document()
    assert set(doc["channels"]) == {spec.base_name for spec in topics.ALL_TOPICS}
    assert set(doc["components"]["messages"]) == set(EVENT_CLASSES)
    for event_type, cls in EVENT_CLASSES.items():
        channel = doc["channels"][cls.topic.base_name]
        assert channel["messages"][event_type] == {"$ref": f"#/components/messages/{event_type}"}
        assert channel["bindings"]["kafka"]["partitions"] == cls.topic.partitions


def test_every_reference_resolves_inside_the_document():
    doc = asyncapi.document()
    text = json.dumps(doc)
    refs = {part.split('"', 1)[0] for part in text.split('"$ref": "')[1:]}
    assert refs, "the document refers to its components"
    for ref in refs:
        node = doc
        for name in ref.removeprefix("#/").split("/"):
            assert name in node, f"{ref} does not resolve"
            node = node[name]


def test_a_message_carries_its_payload_s_own_summary():
    messages = asyncapi.document()["components"]["messages"]
    assert (
        messages["activity.logged"]["summary"]
        == "A touch: an email, call or meeting logged by a rep."
    )
    assert "summary" not in messages["form.submitted"]  # its payload says nothing of its own


def test_the_command_prints_the_document_and_writes_it(tmp_path):
    printed = CliRunner().invoke(app, ["asyncapi"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == asyncapi.render()
    target = tmp_path / "asyncapi.json"
    written = CliRunner().invoke(app, ["asyncapi", "-o", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text(encoding="utf-8") == asyncapi.render()
