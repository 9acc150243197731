import json
import logging

from revops.events.logs import configure_logging, event_context


def test_log_lines_are_json_with_the_service_and_the_event_id(capsys):
    configure_logging("router", "INFO")
    log = logging.getLogger("revops.test")
    with event_context("evt-42"):
        log.info("lead routed", extra={"rule": "round_robin"})
    log.info("between events")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["event_id"] == "evt-42"
    assert first["service"] == "router"
    assert first["rule"] == "round_robin"
    assert first["message"] == "lead routed"
    assert "event_id" not in second
