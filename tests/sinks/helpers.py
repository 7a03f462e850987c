"""Detections and frame results built by hand, as the tracker would hand them to the sinks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from streamseg.sinks.base import FrameResult


def detections_from_dense(
    masks: np.ndarray,
    labels: list[str],
    *,
    tracker_id: list[int] | None = None,
    scores: list[float] | None = None,
    compact: bool = True,
) -> sv.Detections:
    """Detections whose boxes are the tight boxes of `masks` (N, H, W), stored as a CompactMask."""
    n, h, w = masks.shape
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0])
    xyxy = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    mask = sv.CompactMask.from_dense(masks, xyxy, image_shape=(h, w)) if compact else masks
    names = sorted(set(labels))
    return sv.Detections(
        xyxy=xyxy,
        mask=mask,
        confidence=np.array(scores if scores is not None else [0.9] * n, dtype=np.float32),
        class_id=np.array([names.index(label) for label in labels], dtype=int),
        tracker_id=None if tracker_id is None else np.array(tracker_id, dtype=int),
        data={"class_name": np.array(labels)},
    )


def boxes_only(labels: list[str], *, tracker_id: list[int] | None = None) -> sv.Detections:
    """Mask-less detections, one 10x10 box per label."""
    n = len(labels)
    xyxy = np.array([[10 * i, 10, 10 * i + 9, 19] for i in range(n)], dtype=np.float32).reshape(-1, 4)
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.full(n, 0.5, dtype=np.float32),
        class_id=np.zeros(n, dtype=int),
        tracker_id=None if tracker_id is None else np.array(tracker_id, dtype=int),
        data={"class_name": np.array(labels, dtype=str)},
    )


def frame_result(detections: sv.Detections, *, frame: int = 0, camera: str = "front", events=()) -> FrameResult:
    return FrameResult(
        camera=camera,
        frame=frame,
        pts=frame / 10,
        capture_ts=1_700_000_000.0 + frame / 10,
        width=64,
        height=48,
        detections=detections,
        events=list(events),
    )


@dataclass
class FakeEvent:
    """Stands in for streamseg.tracking.events.TrackEvent: the sinks only call to_dict()."""

    type: str
    event_id: str
    track_id: int
    label: str = "person"
    camera: str = "front"
    zones: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        state = {
            "label": self.label,
            "score": 0.9,
            "top_score": 0.9,
            "box": [1.0, 2.0, 3.0, 4.0],
            "mask_area": 4,
            "centroid": [2.0, 3.0],
            "start_time": 1_700_000_000.0,
            "end_time": None,
            "last_seen": 1_700_000_000.0,
            "frames": 1,
            "stationary": False,
            "zones": self.zones,
            "entered_zones": self.zones,
            "crossings": [],
        }
        return {
            "schema_version": 1,
            "ts": 1_700_000_000.0,
            "type": self.type,
            "event_id": self.event_id,
            "camera": self.camera,
            "track_id": self.track_id,
            "label": self.label,
            "zones": self.zones,
            "before": None if self.type == "new" else state,
            "after": state,
        }
