"""`tracker:` section: which multi-object tracker from the `trackers` package gives track IDs."""

from __future__ import annotations

from pydantic import Field

from streamseg.config.base import Section
from streamseg.vocab import TrackerType


class TrackerConfig(Section):
    type: TrackerType = Field(
        TrackerType.BYTETRACK,
        description="Tracker from the `trackers` package (botsort without camera motion compensation); none "
        "disables tracking and events.",
    )
    lost_track_buffer: int = Field(
        30, ge=0, le=10000, description="Frames (at 30 fps) a lost track is kept before it ends."
    )
    track_activation_threshold: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Minimum score for a detection to start a new track (ocsort: high_conf_det_threshold does).",
    )
    minimum_consecutive_frames: int = Field(
        2, ge=1, le=100, description="Frames a track must be seen before it gets an ID and a `new` event."
    )
    minimum_iou_threshold: float = Field(
        0.1, ge=0.0, le=1.0, description="Minimum IoU to associate a detection with a track."
    )
    high_conf_det_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="bytetrack, botsort, ocsort: scores above this are matched first."
    )
