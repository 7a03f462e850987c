"""`events:` section: how track events are produced."""

from __future__ import annotations

from pydantic import Field

from streamseg.config.base import Section


class EventsConfig(Section):
    update_interval: float = Field(
        5.0, ge=0.0, description="Seconds between `update` events for one track (0: every processed frame)."
    )
    stationary_px: float = Field(
        10.0,
        ge=0.0,
        description="A track whose centroid moved less than this (pixels) in the last "
        "`stationary_after` seconds is marked stationary.",
    )
    stationary_after: float = Field(10.0, gt=0.0, description="See stationary_px.")
