"""`zones:` and `lines:` of a camera: polygons objects are in, lines they cross."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from streamseg.config.base import Section

# Names become MQTT topic levels: keep them to one safe level, and off the camera's own topics.
# fullmatch, not `$`: re.match("...$") accepts a trailing newline, which no broker takes in a topic.
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
RESERVED = frozenset({"status", "detections", "events", "snapshot", "zones", "lines", "available", "stats", "all"})
MAX_COORD = 16384  # pixels; larger than any camera frame we decode

Point = tuple[float, float]


def _check_point(p: Point) -> Point:
    x, y = p
    if not (0 <= x <= MAX_COORD and 0 <= y <= MAX_COORD):
        raise ValueError(f"point {[x, y]} is outside 0..{MAX_COORD} (image pixels, origin top-left)")
    return p


class ZoneConfig(Section):
    points: list[Point] = Field(
        min_length=3,
        description="Polygon corners [[x, y], ...] in image pixels (origin top-left); 3 or more. A zone reaching "
        "outside the frame is clipped to it (logged once): only its part inside the frame counts.",
    )
    min_overlap: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="An object is in the zone when at least this fraction of its mask's pixels lies inside "
        "the polygon. Models without masks use the box's bottom-centre point instead.",
    )
    labels: list[str] | None = Field(None, description="Only these labels can be in the zone; null: every label.")
    inertia: int = Field(
        3,
        ge=1,
        le=100,
        description="Frames in a row a tracked object must be seen inside (or outside) before it enters (or "
        "leaves) the zone, so an object on the edge does not flicker in and out; a new track starts where it "
        "is first seen. 1: at once.",
    )

    @field_validator("points")
    @classmethod
    def _points(cls, points: list[Point]) -> list[Point]:
        for p in points:
            _check_point(p)
        if len({tuple(p) for p in points}) < 3:
            raise ValueError("a zone needs at least 3 distinct points")
        return points


class LineConfig(Section):
    start: Point = Field(description="[x, y] where the line starts, image pixels.")
    end: Point = Field(
        description="[x, y] where it ends. Crossing to the left of start->end (as seen on the image) counts "
        "`in`, to the right `out`: a line drawn left to right counts objects moving up the image as `in`."
    )
    anchor: Literal["centroid", "bottom_center"] = Field(
        "bottom_center", description="The point of each box that must cross: its centre, or its bottom-centre."
    )
    min_frames: int = Field(
        2, ge=1, le=100, description="Frames an object must stay on the new side before the crossing counts."
    )
    labels: list[str] | None = Field(None, description="Only count these labels; null: every label.")

    @field_validator("start", "end")
    @classmethod
    def _point(cls, p: Point) -> Point:
        return _check_point(p)


def check_names(kind: str, names: list[str]) -> None:
    """Zone and line names are MQTT topic levels: safe characters, and none of the reserved words."""
    for name in names:
        if not NAME.fullmatch(name):
            raise ValueError(
                f"{kind} name {name!r} is not a valid MQTT topic level: use 1 to 64 letters, digits, '_' and '-'"
            )
        if name.lower() in RESERVED:
            raise ValueError(f"{kind} name {name!r} is reserved (topics: {', '.join(sorted(RESERVED))})")
