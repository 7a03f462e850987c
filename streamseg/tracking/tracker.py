"""Build the configured tracker. Every tracker has the same contract: update(detections) -> detections."""

from __future__ import annotations

from typing import Any

from streamseg.config.tracker import TrackerConfig


def make_tracker(cfg: TrackerConfig, frame_rate: float) -> Any | None:
    """A `trackers` tracker, or None when tracking is off. frame_rate: frames processed per second."""
    import trackers

    common = {
        "lost_track_buffer": cfg.lost_track_buffer,
        "frame_rate": frame_rate,
        "track_activation_threshold": cfg.track_activation_threshold,
        "minimum_consecutive_frames": cfg.minimum_consecutive_frames,
        "minimum_iou_threshold": cfg.minimum_iou_threshold,
    }
    if cfg.type == "none":
        return None
    if cfg.type == "bytetrack":
        return trackers.ByteTrackTracker(**common, high_conf_det_threshold=cfg.high_conf_det_threshold)
    if cfg.type == "ocsort":
        return trackers.OCSORTTracker(**common)
    return trackers.SORTTracker(**common)
