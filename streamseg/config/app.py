"""The whole config file."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from streamseg.config.base import Section
from streamseg.config.camera import CameraConfig
from streamseg.config.homeassistant import HomeAssistantConfig
from streamseg.config.http import HttpConfig
from streamseg.config.mqtt import MqttConfig
from streamseg.config.outputs import path_collisions

# A camera's name is one MQTT topic level ({prefix}/{camera}/...): letters, digits, '_' and '-' only.
# fullmatch: `$` in re.match also matches before a trailing newline, and "front\n" is not a usable topic level.
CAMERA_NAME = re.compile(r"[A-Za-z0-9_-]+")


class AppConfig(Section):
    mqtt: MqttConfig | None = Field(None, description="Broker to publish to; omit to publish nothing.")
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="Keys merged into every camera; a camera's own keys win."
    )
    cameras: dict[str, CameraConfig] = Field(
        description="Cameras by name; the name is an MQTT topic level: letters, digits, '_' and '-'."
    )
    stats_interval: float = Field(10.0, gt=0, description="Seconds between stats messages.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Logging level.")
    http: HttpConfig | None = Field(
        None,
        description="One HTTP server: status page `/`, `/healthz`, `/metrics`, `/api/cameras`, live views. Omit it "
        "and none runs.",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="A separate Prometheus-only server on this port (/metrics); null: off. With `http:` the same "
        "metrics are also at http://{http.host}:{http.port}/metrics.",
    )
    metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="Address the metrics server listens on (0.0.0.0: every interface)."
    )
    hang_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a camera's worker may go without progress, or an output spend in one write, before it "
        "counts as hung: the systemd watchdog pings stop (systemd restarts the daemon) and health checks fail. "
        "Waiting for frames or for an inference server is not hanging.",
    )
    homeassistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery."
    )

    @field_validator("cameras")
    @classmethod
    def _names(cls, cameras: dict[str, CameraConfig]) -> dict[str, CameraConfig]:
        if not cameras:
            raise ValueError("at least one camera is required")
        bad = [name for name in cameras if not CAMERA_NAME.fullmatch(name)]
        if bad:
            names = ", ".join(repr(name) for name in bad)  # repr: a newline or NUL shows as \n, \x00
            what = "camera name {} is not a valid MQTT topic level" if len(bad) == 1 else "camera names {} are not"
            raise ValueError(f"{what.format(names)}: camera names may use only letters, digits, '_' and '-'")
        return cameras

    @model_validator(mode="after")
    def _discovery_needs_mqtt(self) -> AppConfig:
        if self.homeassistant.enabled and self.mqtt is None:
            problem = "needs the mqtt section: discovery configs go to the broker"
            error = InitErrorDetails(
                type=PydanticCustomError("needs_mqtt", problem), loc=("homeassistant", "enabled"), input=True
            )
            raise ValidationError.from_exception_data(type(self).__name__, [error])
        return self

    @model_validator(mode="after")
    def _outputs_overwrite_nothing(self, info: ValidationInfo) -> AppConfig:
        """An output path that is an input, the outbox or another output: one problem per field."""
        problems = path_collisions(self, (info.context or {}).get("config_path"))
        if problems:
            errors = [
                InitErrorDetails(
                    type=PydanticCustomError("output_path", "{problem}", {"problem": problem}), loc=loc, input=None
                )
                for loc, problem in problems
            ]
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self
