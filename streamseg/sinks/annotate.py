"""Draw masks, boxes, labels and keypoint skeletons on a frame: shared by every sink that shows video to people."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import supervision as sv

from streamseg.config.zones import LineConfig, ZoneConfig
from streamseg.detections import KEYPOINTS, labels_of

OVERLAY = sv.Color.from_hex("#ffd400")  # zones and lines: one colour, distinct from the per-track palette
KEYPOINT_VISIBLE = 0.5  # keypoints whose visibility score is below this are not drawn
# Skeleton edges: supervision's for the keypoint count (COCO's 17-keypoint skeleton for pose models)
_EDGES = sv.EdgeAnnotator(color=sv.Color.from_hex("#00e5ff"), thickness=2)
_VERTICES = sv.VertexAnnotator(color=sv.Color.from_hex("#ff2d95"), radius=3)


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
    """Draw `detections` on the BGR `image` in place and return it.

    Colours follow the track id when the detections are tracked (so an object keeps its colour from
    frame to frame; unconfirmed tracks, id -1, share one colour), else the class. CompactMask masks
    are painted from their crops, never expanded to full-frame arrays. Pose models' keypoints are drawn as a
    skeleton (edges, then the keypoints), leaving out the keypoints the model does not see (visibility < 0.5).
    """
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
    keypoints = key_points(detections)
    if keypoints is not None:
        image = _EDGES.annotate(image, keypoints)
        image = _VERTICES.annotate(image, keypoints)
    return label_annotator.annotate(image, detections, labels=labels(detections))


def key_points(detections: sv.Detections) -> sv.KeyPoints | None:
    """The detections' keypoints (`data["keypoints"]`) as supervision's KeyPoints, for its annotators."""
    kpts = detections.data.get(KEYPOINTS)
    if kpts is None or len(kpts) == 0:
        return None
    kpts = np.asarray(kpts, dtype=np.float32)
    visible = kpts[..., 2] >= KEYPOINT_VISIBLE if kpts.shape[-1] == 3 else None
    return sv.KeyPoints(xy=np.ascontiguousarray(kpts[..., :2]), class_id=detections.class_id, visible=visible)


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
