"""Settings come from the environment only: a `.env` file in the working directory (the
one docker-compose.yml reads, holding the containers' secrets) changes nothing for the
services started on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from revops.console.settings import ConsoleSettings
from revops.events.settings import ServiceSettings
from revops.ingest.settings import IngestSettings


@pytest.fixture
def compose_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "API_TOKEN=from-the-env-file\nHTTP_PORT=9999\nHTTP_HOST=0.0.0.0\n"
        'HUBSPOT_CLIENT_SECRETS=["from-the-env-file"]\n'
    )
    monkeypatch.chdir(tmp_path)
    for name in ("API_TOKEN", "HTTP_PORT", "HTTP_HOST", "HUBSPOT_CLIENT_SECRETS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("compose_env_file")
@pytest.mark.parametrize("settings_class", [ServiceSettings, IngestSettings, ConsoleSettings])
def test_a_env_file_is_not_read(settings_class: type[BaseSettings]) -> None:
    settings = settings_class()
    assert settings.model_dump()["http_host"] == "127.0.0.1"
    assert settings.model_dump()["http_port"] != 9999
    assert "from-the-env-file" not in repr(settings.model_dump(mode="json"))
    assert "from-the-env-file" not in _secrets(settings)


def _secrets(settings: BaseSettings) -> list[str]:
    found = []
    for value in settings.model_dump().values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, SecretStr):
                found.append(item.get_secret_value())
    return found


@pytest.mark.usefixtures("compose_env_file")
def test_the_environment_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "from-the-environment")
    assert ServiceSettings().api_token.get_secret_value() == "from-the-environment"
