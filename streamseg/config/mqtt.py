"""`mqtt:` section: the broker streamseg publishes to (omit the section and nothing is published)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from streamseg.config.base import Section, existing_file, resolve_path


class TlsConfig(Section):
    ca: Path | None = Field(None, description="CA certificate file (PEM); null uses the system CAs.")
    cert: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key: Path | None = Field(None, description="Client private key (PEM).")
    insecure: bool = Field(False, description="Skip the broker host name check (testing only).")

    @field_validator("ca", "cert", "key")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return existing_file(path, info)


class OutboxConfig(Section):
    enabled: bool = Field(True, description="Keep events and detections on disk until the broker acknowledged them.")
    path: Path | None = Field(
        None,
        description="SQLite file (relative to the config file). null: outbox-<topic_prefix>.sqlite in "
        "$STATE_DIRECTORY, else $XDG_STATE_HOME/streamseg, else ~/.local/state/streamseg.",
    )
    max_messages: int = Field(100_000, ge=100, description="Most messages kept; beyond it `policy` drops some.")
    max_mb: float = Field(512.0, gt=0, description="Most megabytes of payload kept; beyond it `policy` drops some.")
    policy: Literal["detections_first", "oldest"] = Field(
        "detections_first",
        description="What a full outbox drops: the oldest detections first (events only when no detections "
        "are left), or the oldest messages of any kind.",
    )

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return None if path is None else resolve_path(path, info)


class MqttConfig(Section):
    host: str = Field("127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    topic_prefix: str = Field("streamseg", pattern=r"^[^#+]+$", description="First level of every topic; no wildcards.")
    qos: Literal[0, 1, 2] = Field(1, description="QoS of events and detections.")
    detections: bool = Field(True, description="Publish {prefix}/{camera}/detections for every frame.")
    username: str | None = Field(None, description="Broker user; ${MQTT_USER} reads the environment.")
    password: str | None = Field(None, description="Broker password; use ${VAR}, never plain text.")
    password_file: Path | None = Field(
        None, description="File whose first line is the broker password (instead of `password`)."
    )
    client_id: str | None = Field(None, description="MQTT client id; null: streamseg-<host>-<pid>.")
    keepalive: int = Field(30, ge=5, le=3600, description="Seconds between keepalive pings.")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version.")
    tls: TlsConfig | None = Field(None, description="Enable TLS (with optional client certificate).")
    outbox: OutboxConfig = Field(
        default_factory=OutboxConfig, description="Disk outbox: nothing is lost while the broker is down."
    )

    @field_validator("password_file")
    @classmethod
    def _password_file(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return existing_file(path, info)

    @model_validator(mode="after")
    def _one_password(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either password or password_file, not both")
        return self

    def read_password(self) -> str | None:
        """`password`, or the first line of `password_file` (read when connecting, never logged)."""
        if self.password_file is None:
            return self.password
        lines = self.password_file.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
