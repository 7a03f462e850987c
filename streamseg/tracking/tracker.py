"""Track IDs from the `trackers` package, behind one small wrapper whose contract is the whole API:

    Tracker(cfg, frame_rate).update(detections, timestamp) -> Tracked(detections, alive)

`detections` come back with `tracker_id` set (-1 while a track is not confirmed); `alive` is the set of
confirmed IDs the tracker still holds, seen this frame or only predicted (lost, within `lost_track_buffer`),
which is what decides when a track `end`s.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import supervision as sv

from streamseg.config.tracker import TrackerConfig
from streamseg.vocab import TrackerType


class Tracked(NamedTuple):
    detections: sv.Detections
    alive: set[int]


class Tracker:
    def __init__(self, cfg: TrackerConfig, frame_rate: float) -> None:
        if cfg.type == TrackerType.NONE:
            raise ValueError("tracking is off (tracker.type: none): there is no tracker to build")
        self.type = TrackerType(cfg.type)
        self._tracker = _build(cfg, frame_rate)

    def update(self, detections: sv.Detections, timestamp: float | None = None) -> Tracked:
        tracked = self._tracker.update(detections, timestamp=timestamp)
        # Every `trackers` tracker (>= 2.6) keeps its tracklets in `tracks`; confirmed ones have an ID >= 0.
        alive = {int(t.tracker_id) for t in self._tracker.tracks if int(t.tracker_id) >= 0}
        return Tracked(tracked, alive)


def _build(cfg: TrackerConfig, frame_rate: float) -> Any:
    """The `trackers` tracker for cfg.type. Their constructors differ: each gets only the settings it has."""
    import trackers

    common = {
        "lost_track_buffer": cfg.lost_track_buffer,
        "frame_rate": frame_rate,
        "minimum_consecutive_frames": cfg.minimum_consecutive_frames,
    }
    if cfg.type == TrackerType.BYTETRACK:
        return trackers.ByteTrackTracker(
            **common,
            track_activation_threshold=cfg.track_activation_threshold,
            minimum_iou_threshold=cfg.minimum_iou_threshold,
            high_conf_det_threshold=cfg.high_conf_det_threshold,
        )
    if cfg.type == TrackerType.BOTSORT:
        return trackers.BoTSORTTracker(
            **common,
            track_activation_threshold=cfg.track_activation_threshold,
            minimum_iou_threshold_first_assoc=cfg.minimum_iou_threshold,
            high_conf_det_threshold=cfg.high_conf_det_threshold,
            enable_cmc=False,  # camera motion compensation needs the frame; fixed cameras do not move
        )
    if cfg.type == TrackerType.OCSORT:
        # OC-SORT starts tracks from high-confidence detections only: no separate activation threshold.
        return trackers.OCSORTTracker(
            **common,
            minimum_iou_threshold=cfg.minimum_iou_threshold,
            high_conf_det_threshold=cfg.high_conf_det_threshold,
        )
    return trackers.SORTTracker(
        **common,
        track_activation_threshold=cfg.track_activation_threshold,
        minimum_iou_threshold=cfg.minimum_iou_threshold,
    )
