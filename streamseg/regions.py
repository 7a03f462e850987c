"""Regions (`motion.regions: true`): where in a frame to run the model, and the detections of the crops merged back.

    plan(motion_boxes, track_boxes, frame_hw, side, max_regions) -> list[Window] | None
    merge(parts, frame_hw, iou) -> sv.Detections

A high-resolution frame scaled down to the model's input loses small objects (a person 40 pixels tall in a 4K
frame is 3 pixels at 320). Instead, each moving area, together with the tracked objects it touches, is cut out
in a square window of the model's input size in frame pixels (larger when the area is larger, then scaled down),
so the model sees it at full resolution. Areas whose boxes fit one window share it. Too many windows, or windows
covering half the frame, and the plan is None: the whole frame is cheaper.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import supervision as sv

MARGIN = 0.15  # of a box's size added on each side, so an object cut by motion's box is whole in the window
MAX_COVER = 0.5  # windows covering more of the frame than this: infer the whole frame instead


class Window(NamedTuple):
    """A crop of the frame, [x0, x1) x [y0, y1) in frame pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y0 : self.y1, self.x0 : self.x1]

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


def full(frame_hw: tuple[int, int]) -> Window:
    return Window(0, 0, frame_hw[1], frame_hw[0])


def plan(
    motion_boxes: np.ndarray, track_boxes: np.ndarray, frame_hw: tuple[int, int], side: int, max_regions: int
) -> list[Window] | None:
    """Windows covering every moving area (with the tracked objects it overlaps); None: infer the whole frame."""
    h, w = frame_hw
    boxes = [list(map(float, b)) for b in motion_boxes]
    for t in track_boxes:  # a tracked object the motion touches is taken whole, even if only its arm moved
        for b in boxes:
            if t[0] < b[2] and b[0] < t[2] and t[1] < b[3] and b[1] < t[3]:
                b[:] = [min(b[0], t[0]), min(b[1], t[1]), max(b[2], t[2]), max(b[3], t[3])]
                break
    clusters: list[list[float]] = []
    for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        mx, my = MARGIN * (b[2] - b[0]), MARGIN * (b[3] - b[1])
        b = [b[0] - mx, b[1] - my, b[2] + mx, b[3] + my]
        for c in clusters:
            u = [min(c[0], b[0]), min(c[1], b[1]), max(c[2], b[2]), max(c[3], b[3])]
            overlap = b[0] < c[2] and c[0] < b[2] and b[1] < c[3] and c[1] < b[3]
            if overlap or (u[2] - u[0] <= side and u[3] - u[1] <= side):
                c[:] = u
                break
        else:
            clusters.append(b)
    windows = [_window(c, side, w, h) for c in clusters]
    if len(windows) > max_regions or sum(win.area for win in windows) > MAX_COVER * w * h:
        return None
    return windows


def _window(box: list[float], side: int, w: int, h: int) -> Window:
    """A square window of at least `side` pixels centred on `box`, moved (and cut) to lie inside the frame."""
    size = int(np.ceil(max(side, box[2] - box[0], box[3] - box[1])))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0 = int(round(min(max(cx - size / 2, 0), max(w - size, 0))))
    y0 = int(round(min(max(cy - size / 2, 0), max(h - size, 0))))
    return Window(x0, y0, min(x0 + size, w), min(y0 + size, h))


def to_frame(detections: sv.Detections, window: Window, frame_hw: tuple[int, int]) -> sv.Detections:
    """A crop's detections in frame coordinates (boxes moved, masks re-anchored without being expanded)."""
    if window == full(frame_hw):
        return detections
    detections.xyxy = detections.xyxy + np.array([window.x0, window.y0] * 2, dtype=detections.xyxy.dtype)
    if detections.mask is not None:
        detections.mask = detections.mask.with_offset(window.x0, window.y0, frame_hw)
    return detections


def merge(parts: list[sv.Detections], iou: float) -> sv.Detections:
    """One set of detections from the windows' (already in frame coordinates): an object seen by two overlapping
    windows is kept once (class-aware NMS on the masks, or the boxes without masks)."""
    parts = [p for p in parts if len(p)] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    merged = sv.Detections.merge(parts)
    return merged.with_nms(threshold=iou, class_agnostic=False)


def outside(detections: sv.Detections, windows: list[Window]) -> sv.Detections:
    """The detections that no window overlaps: still objects whose last detections stand for this frame."""
    if not len(detections) or not windows:
        return detections
    xyxy = detections.xyxy
    hit = np.zeros(len(detections), bool)
    for win in windows:
        hit |= (xyxy[:, 0] < win.x1) & (win.x0 < xyxy[:, 2]) & (xyxy[:, 1] < win.y1) & (win.y0 < xyxy[:, 3])
    return detections[~hit]
