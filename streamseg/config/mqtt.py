"""`mqtt:` section: the broker streamseg publishes to (omit the section and nothing is published)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from streamseg.config.base import Section, existing_file, resolve_path

MAX_TOPIC_BYTES = 65535  # MQTT: a topic is a UTF-8 string with a 16-bit length
MAX_PACKET_BYTES = 268_435_460  # MQTT: 4-byte remaining length (268,435,455) plus the fixed header
# What a topic must not contain (MQTT 5 section 1.5.4 and 4.7; the checks Home Assistant's valid_topic makes):
# control characters (U+0000 is forbidden, the others "should not" be used) and Unicode non-characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NONCHARACTER = re.compile(r"[\ufdd0-\ufdef]")


def topic_problem(text: str) -> str | None:
    """Why `text` cannot be published to as (part of) an MQTT topic, or None when it can."""
    if not text:
        return "must not be empty"
    if bad := _CONTROL.search(text):
        return f"contains a control character ({bad.group()!r})"
    if _NONCHARACTER.search(text) or any((ord(c) & 0xFFFE) == 0xFFFE for c in text):  # U+xFFFE, U+xFFFF
        return "contains a Unicode non-character"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8 (a lone surrogate)"
    if size > MAX_TOPIC_BYTES:
        return f"is {size} bytes in UTF-8; an MQTT topic is at most {MAX_TOPIC_BYTES}"
    if "+" in text or "#" in text:
        return "contains an MQTT wildcard (+ or #)"
    return None


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
    topic_prefix: str = Field(
        "streamseg",
        description="First level(s) of every topic, e.g. `streamseg` or `site1/streamseg`: no wildcards (+ #), "
        "control characters or empty levels, not starting with `$`; a trailing `/` is dropped.",
    )
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
    max_message_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=MAX_PACKET_BYTES,
        description="Largest MQTT message streamseg sends (the whole PUBLISH packet: payload, topic and header). "
        "A bigger detections message goes out without its masks (marked `truncated`), a bigger event without "
        "its older line crossings; what is still too big, and any other message too big, is dropped and "
        "counted in stats. With protocol 5 the broker's own Maximum Packet Size applies when it is smaller. "
        "Default 1 MiB (EMQX's default limit; mosquitto has none); AWS IoT Core: 131072.",
    )
    outbox: OutboxConfig = Field(
        default_factory=OutboxConfig, description="Disk outbox: nothing is lost while the broker is down."
    )

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, prefix: str) -> str:
        prefix = prefix.removesuffix("/")  # the publisher always dropped one; keep configs that have it working
        if problem := topic_problem(prefix):
            raise ValueError(f"topic_prefix {prefix!r} {problem}")
        if prefix.startswith("$"):
            raise ValueError(f"topic_prefix {prefix!r} must not start with '$' (reserved for the broker: $SYS)")
        if "" in prefix.split("/"):
            raise ValueError(f"topic_prefix {prefix!r} has an empty topic level (a leading '/' or '//')")
        return prefix

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
