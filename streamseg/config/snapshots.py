"""`snapshots:` of a camera: a JPEG on MQTT when a track is new."""

from __future__ import annotations

from pydantic import Field

from streamseg.config.base import Section


class SnapshotsConfig(Section):
    enabled: bool = Field(False, description="Publish {prefix}/{camera}/snapshot (retained JPEG) on each `new` event.")
    crop: bool = Field(True, description="Crop to the new object's box (with a margin); false: the whole frame.")
    quality: int = Field(80, ge=1, le=100, description="JPEG quality.")
