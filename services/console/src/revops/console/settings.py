"""The console's settings, from the environment (the field name upper-cased)."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    # The environment only: a .env file (docker-compose.yml's, with the containers' secrets)
    # is not read, so the services started on this machine never pick it up by accident.
    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "console"
    # "production": refuse the public development tokens even on a loopback address (as
    # the services do; on any other address they are refused whatever this says).
    revops_env: str = "development"
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 8004
    # Where the four services answer; the console reads nothing else.
    ingest_url: str = "http://127.0.0.1:8000"
    router_url: str = "http://127.0.0.1:8001"
    attribution_url: str = "http://127.0.0.1:8002"
    renewals_url: str = "http://127.0.0.1:8003"
    # The services' topic prefix, left out of the topic names the health page shows.
    topic_prefix: str = ""
    # The services' tokens (the same variables and defaults as theirs). A person signs in
    # with one of them; the console then calls the services with that one.
    api_token: SecretStr = SecretStr("dev-admin-token")
    api_read_token: SecretStr = SecretStr("dev-read-token")
    # Signs the session cookie. The default, new at every start, signs everyone out when
    # the console restarts: set one to keep sessions across restarts.
    session_secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_hex(32)))
    session_hours: float = Field(default=8, gt=0)
    # Send the cookie over HTTPS only: set it when the console is served behind TLS.
    secure_cookie: bool = False
    # How long one call to a service may take before its page says it is unreachable.
    api_timeout_s: float = Field(default=5, gt=0)
