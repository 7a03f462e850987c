"""`cameras.<name>:` section: one video stream and what to do with it."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from streamseg.config.base import Section
from streamseg.config.events import EventsConfig
from streamseg.config.model import ModelConfig
from streamseg.config.motion import MotionConfig
from streamseg.config.outputs import OutputsConfig
from streamseg.config.snapshots import SnapshotsConfig
from streamseg.config.source import SourceConfig
from streamseg.config.tracker import TrackerConfig
from streamseg.config.zones import LineConfig, ZoneConfig, check_names
from streamseg.vocab import MaskFormat, TrackerType


class CameraConfig(Section):
    enabled: bool = Field(True, description="false keeps the camera in the file but does not start it.")
    source: SourceConfig = Field(description="Where frames come from.")
    fps: float | None = Field(
        None, gt=0, le=1000, description="Process at most this many frames a second; null: every frame."
    )
    model: ModelConfig = Field(description="The network and its thresholds.")
    mask_format: MaskFormat = Field(MaskFormat.POLYGON, description="Mask encoding in MQTT and JSON lines.")
    polygon_tolerance: float = Field(
        1.0, ge=0.0, le=100.0, description="Polygon simplification tolerance in pixels (0: exact contour)."
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Track IDs and events.")
    events: EventsConfig = Field(default_factory=EventsConfig, description="Track event settings.")
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="Files to write.")
    zones: dict[str, ZoneConfig] = Field(
        default_factory=dict, description="Polygon zones by name; events list the zones a track is in and entered."
    )
    lines: dict[str, LineConfig] = Field(default_factory=dict, description="Counting lines by name (crossings in/out).")
    snapshots: SnapshotsConfig = Field(default_factory=SnapshotsConfig, description="JPEG snapshots on MQTT.")
    motion: MotionConfig = Field(
        default_factory=MotionConfig, description="Motion gating: infer only while something moves; regions."
    )

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: dict[str, ZoneConfig]) -> dict[str, ZoneConfig]:
        check_names("zone", list(zones))
        return zones

    @field_validator("lines")
    @classmethod
    def _line_names(cls, lines: dict[str, LineConfig]) -> dict[str, LineConfig]:
        check_names("line", list(lines))
        return lines

    @model_validator(mode="after")
    def _zones_need_tracks(self) -> CameraConfig:
        if (self.zones or self.lines) and self.tracker.type == TrackerType.NONE:
            raise ValueError("zones and lines need tracking: set tracker.type (e.g. bytetrack)")
        return self
