"""Draw masks, boxes and labels on a frame: shared by every sink that shows video to people."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import supervision as sv

from streamseg.config.zones import LineConfig, ZoneConfig
from streamseg.detections import labels_of

OVERLAY = sv.Color.from_hex("#ffd400")  # zones and lines: one colour, distinct from the per-track palette


@cache
def _annotators(lookup: sv.ColorLookup) -> tuple[sv.MaskAnnotator, sv.BoxAnnotator, sv.LabelAnnotator]:
    # Built once per colour strategy: the annotators are stateless and cheap to share across cameras.
    return (
        sv.MaskAnnotator(opacity=0.45, color_lookup=lookup),
        sv.BoxAnnotator(thickness=2, color_lookup=lookup),
        sv.LabelAnnotator(text_scale=0.45, text_padding=4, color_lookup=lookup),
    )


def labels(detections: sv.Detections) -> list[str]:
    """``#12 person 0.87``: track id when confirmed (>= 0), class name (or id), confidence."""
    named = detections.data.get("class_name") is not None or detections.class_id is not None
    names = labels_of(detections)
    out = []
    for i in range(len(detections)):
        parts = []
        if detections.tracker_id is not None and detections.tracker_id[i] >= 0:
            parts.append(f"#{int(detections.tracker_id[i])}")
        if named:
            parts.append(names[i])
        if detections.confidence is not None:
            parts.append(f"{float(detections.confidence[i]):.2f}")
        out.append(" ".join(parts))
    return out


def annotate(image: np.ndarray, detections: sv.Detections) -> np.ndarray:
    """A copy of the BGR `image` with `detections` drawn on it; `image` itself is never changed: the frame is
    shared by every sink of the camera (the video output, the live view and the MQTT snapshots read it at once).

    Colours follow the track id when the detections are tracked (so an object keeps its colour from
    frame to frame; unconfirmed tracks, id -1, share one colour), else the class. CompactMask masks
    are painted from their crops, never expanded to full-frame arrays.
    """
    image = image.copy()
    if len(detections) == 0:
        return image
    if detections.tracker_id is not None:
        lookup = sv.ColorLookup.TRACK
    elif detections.class_id is not None:
        lookup = sv.ColorLookup.CLASS
    else:
        lookup = sv.ColorLookup.INDEX
    mask_annotator, box_annotator, label_annotator = _annotators(lookup)
    if detections.mask is not None:
        image = mask_annotator.annotate(image, detections)
    image = box_annotator.annotate(image, detections)
    return label_annotator.annotate(image, detections, labels=labels(detections))


def draw_overlays(image: np.ndarray, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]) -> np.ndarray:
    """Outline the camera's zones and counting lines, with their names, on `image` (in place)."""
    for name, zone in zones.items():
        polygon = np.asarray(zone.points, dtype=np.int32)
        image = sv.draw_polygon(image, polygon, color=OVERLAY, thickness=2)
        x, y = polygon.min(axis=0)
        image = _name(image, name, int(x), int(y))
    for name, line in lines.items():
        start, end = sv.Point(*map(int, line.start)), sv.Point(*map(int, line.end))
        image = sv.draw_line(image, start, end, color=OVERLAY, thickness=2)
        image = _name(image, name, start.x, start.y)
    return image


def _name(image: np.ndarray, text: str, x: int, y: int) -> np.ndarray:
    """A small yellow-on-black tag whose top-left corner is near (x, y); draw_text anchors on the centre."""
    anchor = sv.Point(x + 6 + 4 * len(text), y + 14)
    return sv.draw_text(
        image, text, anchor, text_color=OVERLAY, text_scale=0.4, text_padding=3, background_color=sv.Color.BLACK
    )
