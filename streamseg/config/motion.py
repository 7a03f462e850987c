"""`motion:` section of a camera: spend inference only where something moves (README, "Motion")."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from streamseg.config.base import Section
from streamseg.config.zones import Point, _check_point


class MotionConfig(Section):
    enabled: bool = Field(
        False,
        description="Run motion detection on every frame the camera takes and skip inference while nothing moves "
        "(the objects already tracked keep their last detections). false: every frame is inferred.",
    )
    width: int = Field(
        320,
        ge=32,
        le=1920,
        description="Width in pixels of the grey copy motion is found on (the height keeps the aspect ratio); "
        "smaller is cheaper and ignores finer detail.",
    )
    threshold: int = Field(
        25, ge=1, le=255, description="Grey-level change (0..255) from the previous frame that counts as motion."
    )
    min_area: float = Field(
        0.0002,
        ge=0.0,
        le=1.0,
        description="Smallest moving area that counts, as a fraction of the frame's area (0.0002: 20x20 pixels "
        "of a 1920x1080 frame); smaller changes (noise, rain) are ignored.",
    )
    mask: list[list[Point]] = Field(
        default_factory=list,
        description="Polygons [[x, y], ...] in image pixels where motion is ignored (a timestamp overlay, trees "
        "in the wind). Objects there are still detected when motion elsewhere runs inference.",
    )
    refresh_seconds: float | None = Field(
        10.0,
        gt=0.0,
        le=86400.0,
        description="Infer at least this often while the scene is still, so slow changes motion misses are "
        "caught; null: only on motion.",
    )
    regions: bool = Field(
        False,
        description="Run the model on crops around the motion and the tracked objects it touches, at the model's "
        "input size, instead of on the whole frame scaled down: small distant objects in high-resolution streams "
        "stay detectable. Detections from overlapping crops are merged.",
    )
    max_regions: int = Field(
        4,
        ge=1,
        le=32,
        description="With regions: more crops than this (or crops covering half the frame) and the whole frame "
        "is inferred instead.",
    )

    @field_validator("mask")
    @classmethod
    def _polygons(cls, mask: list[list[Point]]) -> list[list[Point]]:
        for polygon in mask:
            if len({tuple(p) for p in polygon}) < 3:
                raise ValueError("each mask polygon needs at least 3 distinct points")
            for p in polygon:
                _check_point(p)
        return mask

    @model_validator(mode="after")
    def _regions_need_motion(self) -> MotionConfig:
        if self.regions and not self.enabled:
            raise ValueError("regions need motion detection: set motion.enabled: true")
        return self
