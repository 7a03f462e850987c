"""Track events (new / update / end) from tracked detections, in the spirit of Frigate's events, with masks.

A track becomes `new` the first frame it has a confirmed ID (tracker_id >= 0), gets an `update` when its label,
stationary state or zones change, when it crosses a line, or else at most every `update_interval` seconds, and
`end`s when the tracker drops it.

Each frame's step also returns, per detection, the zones it is in (after inertia, the membership events
report) and the (line, direction) pairs it crossed on this frame: the sinks count from those.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import supervision as sv

from streamseg.config.events import EventsConfig
from streamseg.config.zones import LineConfig, ZoneConfig
from streamseg.detections import labels_of
from streamseg.tracking.zones import CameraZones, FrameShape

SCHEMA_VERSION = 1

Crossing = tuple[str, str]  # (line, "in" | "out")


class TrackStep(NamedTuple):
    """What one frame gave: its events and, per detection (in the detections' order), the zones it is in and the
    lines it crossed on this frame (empty lists without zones or lines)."""

    events: list[TrackEvent]
    zones: list[list[str]]
    crossings: list[list[Crossing]]


@dataclass(slots=True)
class TrackEvent:
    type: str  # new | update | end
    event_id: str
    camera: str
    track_id: int
    label: str
    ts: float  # Unix epoch seconds of the frame that produced the event
    before: dict[str, Any] | None
    after: dict[str, Any]
    zones: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "type": self.type,
            "event_id": self.event_id,
            "camera": self.camera,
            "track_id": self.track_id,
            "label": self.label,
            "ts": round(self.ts, 3),
            "zones": self.zones,
            "before": self.before,
            "after": self.after,
        }


@dataclass(slots=True)
class _Track:
    track_id: int
    event_id: str
    start_time: float
    label: str = ""
    score: float = 0.0
    top_score: float = 0.0
    box: list[float] = field(default_factory=list)
    mask_area: int | None = None
    centroid: list[float] = field(default_factory=list)
    last_seen: float = 0.0
    frames: int = 0
    stationary: bool = False
    history: deque = field(default_factory=deque)  # (ts, cx, cy) over the stationary window
    zones: list[str] = field(default_factory=list)  # zones it is in now (after inertia)
    zone_streaks: dict[str, int] = field(default_factory=dict)  # zone -> frames in a row seen on the other side
    entered_zones: list[str] = field(default_factory=list)  # every zone it has been in, first entry first
    crossings: list[dict[str, Any]] = field(default_factory=list)  # {"line", "direction", "time"}
    published: dict[str, Any] | None = None  # the `after` of the last event sent
    published_at: float = 0.0

    def state(self, end_time: float | None = None) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "top_score": round(self.top_score, 4),
            "box": self.box,
            "mask_area": self.mask_area,
            "centroid": self.centroid,
            "start_time": round(self.start_time, 3),
            "end_time": None if end_time is None else round(end_time, 3),
            "last_seen": round(self.last_seen, 3),
            "frames": self.frames,
            "stationary": self.stationary,
            "zones": list(self.zones),
            "entered_zones": list(self.entered_zones),
            "crossings": [dict(c) for c in self.crossings],
        }


class EventTracker:
    """update(tracked detections, live track ids, ts) -> events. One per camera."""

    def __init__(
        self,
        camera: str,
        cfg: EventsConfig | None = None,
        *,
        zones: dict[str, ZoneConfig] | None = None,
        lines: dict[str, LineConfig] | None = None,
    ) -> None:
        self.camera = camera
        self.cfg = cfg or EventsConfig()
        self.active: dict[int, _Track] = {}
        self.geometry = CameraZones(zones or {}, lines or {}, camera) if zones or lines else None
        self.inertia = {name: z.inertia for name, z in (zones or {}).items()}

    def update(
        self, detections: sv.Detections, alive_ids: set[int] | None, ts: float, frame: FrameShape | None = None
    ) -> TrackStep:
        """detections: the tracker's output. alive_ids: IDs the tracker still holds (None: those seen).
        frame: (height, width) of the image, which zones are clipped to (else the masks' image shape)."""
        events: list[TrackEvent] = []
        seen, zones, crossings = self._observe(detections, ts, frame)
        for track_id in seen:
            track = self.active[track_id]
            if track.published is None:
                events.append(self._emit("new", track, ts))
            elif self._update_due(track, ts):
                events.append(self._emit("update", track, ts))
        gone = [tid for tid in self.active if tid not in seen and (alive_ids is None or tid not in alive_ids)]
        for track_id in gone:
            events.append(self._emit("end", self.active.pop(track_id), ts, end_time=ts))
        return TrackStep(events, zones, crossings)

    def finish(self, ts: float) -> list[TrackEvent]:
        """End every active track (camera stopping): nothing is left open."""
        events = [self._emit("end", track, ts, end_time=track.last_seen) for track in self.active.values()]
        self.active.clear()
        return events

    # -- internals ---------------------------------------------------------------------------------
    def _observe(
        self, detections: sv.Detections, ts: float, frame: FrameShape | None
    ) -> tuple[list[int], list[list[str]], list[list[Crossing]]]:
        """Update the tracks seen on this frame: (their IDs, zones per detection, crossings per detection)."""
        n = len(detections)
        if self.geometry is not None:  # every frame: line state follows absences too
            in_zones, crossed = self.geometry.update(detections, frame)
        else:
            in_zones, crossed = [[] for _ in range(n)], [[] for _ in range(n)]
        if detections.tracker_id is None or n == 0:
            return [], in_zones, crossed
        labels = labels_of(detections)
        areas = _mask_areas(detections)
        seen = []
        for i, track_id in enumerate(detections.tracker_id.tolist()):
            if track_id < 0:
                continue  # not confirmed yet
            track = self.active.get(track_id)
            if track is None:
                track = self.active[track_id] = _Track(track_id, f"{self.camera}-{track_id}-{int(ts * 1000)}", ts)
            score = float(detections.confidence[i]) if detections.confidence is not None else 1.0
            x1, y1, x2, y2 = (round(float(v), 1) for v in detections.xyxy[i])
            if score >= track.top_score:  # label of the best-scored sighting, like Frigate's top score
                track.top_score = score
                track.label = labels[i]
            track.score = score
            track.box = [x1, y1, x2, y2]
            track.centroid = [round((x1 + x2) / 2, 1), round((y1 + y2) / 2, 1)]
            track.mask_area = None if areas is None else int(areas[i])
            track.last_seen = ts
            track.frames += 1
            track.stationary = self._stationary(track, ts)
            if self.geometry is not None:
                track.zones = self._debounce(track, in_zones[i])
                in_zones[i] = list(track.zones)  # the sinks' zone counts follow the same, steadier membership
                track.entered_zones += [z for z in track.zones if z not in track.entered_zones]
                track.crossings += [{"line": ln, "direction": d, "time": round(ts, 3)} for ln, d in crossed[i]]
            seen.append(track_id)
        return seen, in_zones, crossed

    def _debounce(self, track: _Track, seen_in: list[str]) -> list[str]:
        """Zone membership with inertia: a change counts once seen `inertia` frames in a row.

        A new track starts where it is first seen: there is no earlier state for it to flicker against.
        """
        if track.frames == 1:
            return [zone for zone in self.inertia if zone in seen_in]
        zones = []
        for zone, inertia in self.inertia.items():
            inside_now, inside_before = zone in seen_in, zone in track.zones
            streak = track.zone_streaks.get(zone, 0) + 1 if inside_now != inside_before else 0
            if streak >= inertia:
                inside_before, streak = inside_now, 0
            track.zone_streaks[zone] = streak
            if inside_before:
                zones.append(zone)
        return zones

    def _stationary(self, track: _Track, ts: float) -> bool:
        track.history.append((ts, *track.centroid))
        while track.history and ts - track.history[0][0] > self.cfg.stationary_after:
            track.history.popleft()
        if ts - track.start_time < self.cfg.stationary_after:
            return False
        _, cx, cy = track.history[0]
        return math.hypot(track.centroid[0] - cx, track.centroid[1] - cy) < self.cfg.stationary_px

    def _update_due(self, track: _Track, ts: float) -> bool:
        before = track.published or {}
        if before.get("label") != track.label or before.get("stationary") != track.stationary:
            return True
        if before.get("zones") != track.zones or len(before.get("crossings", ())) != len(track.crossings):
            return True  # entered or left a zone, crossed a line: right away, not rate-limited
        return ts - track.published_at >= self.cfg.update_interval

    def _emit(self, kind: str, track: _Track, ts: float, end_time: float | None = None) -> TrackEvent:
        after = track.state(end_time)
        event = TrackEvent(
            kind,
            track.event_id,
            self.camera,
            track.track_id,
            track.label,
            ts,
            track.published,
            after,
            list(track.zones),
        )
        track.published, track.published_at = after, ts
        return event


def _mask_areas(detections: sv.Detections) -> np.ndarray | None:
    mask = detections.mask
    if mask is None:
        return None
    area = getattr(mask, "area", None)  # CompactMask: computed from the RLE, no dense masks
    return np.asarray(area) if area is not None else mask.reshape(len(mask), -1).sum(axis=1)
