"""Zones (polygons) and lines of one camera: which zones each detection is in, which lines it crossed.

Zone membership is decided by the mask: a detection is in a zone when at least `min_overlap` of its mask's
pixels lie inside the polygon. The polygon is rasterised once per frame size (supervision's `polygon_to_mask`,
which clips it to the frame), so the raster is the frame's size however far outside the frame a corner lies;
each CompactMask crop is ANDed with the matching window of that raster, so the cost is the size of the mask
crops, never N full-frame masks. Models without masks test the box's bottom-centre point against the polygon
itself. A zone that reaches outside the frame is logged once: only its part inside can ever count.

Lines are supervision's `LineZone` as is (per-track side history, `min_frames` debounce, in/out), with one
anchor point per box; we only add the label filter. Counting (per label, per direction) is the MQTT sink's,
from the crossings each frame carries.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import supervision as sv

from streamseg.config.zones import LineConfig, ZoneConfig
from streamseg.detections import labels_of

log = logging.getLogger(__name__)

ANCHORS = {"centroid": sv.Position.CENTER, "bottom_center": sv.Position.BOTTOM_CENTER}

FrameShape = tuple[int, int]  # (height, width) of the camera's frames


class Zone:
    def __init__(self, name: str, cfg: ZoneConfig, camera: str = "") -> None:
        self.name = name
        self.camera = camera
        self.min_overlap = cfg.min_overlap
        self.labels = set(cfg.labels) if cfg.labels is not None else None
        self.polygon = np.round(np.asarray(cfg.points, dtype=np.float64)).astype(np.int32)
        self.raster: np.ndarray | None = None  # (frame height, frame width) bool, for the last frame size seen
        self._warned = False

    def fit(self, frame: FrameShape) -> np.ndarray:
        """The zone's raster for frames of this (height, width): the polygon clipped to the frame."""
        h, w = (int(v) for v in frame)
        if self.raster is None or self.raster.shape != (h, w):
            self.raster = sv.polygon_to_mask(self.polygon, (w, h)).view(bool)  # cv2.fillPoly clips to the frame
            if not self._warned:
                self._warned = self._warn_if_outside(self.raster)
        return self.raster

    def _warn_if_outside(self, raster: np.ndarray) -> bool:
        h, w = raster.shape
        x_max, y_max = (int(v) for v in self.polygon.max(axis=0))
        if x_max <= w and y_max <= h:  # a corner on the frame's edge is still inside
            return False
        where, consequence = (
            ("reaches outside", "only its part inside the frame counts")
            if raster.any()
            else ("lies wholly outside", "nothing can ever be in it")
        )
        log.warning(
            "camera %r: zone %r %s the %dx%d frame (its points reach x=%d, y=%d): %s",
            self.camera,
            self.name,
            where,
            w,
            h,
            x_max,
            y_max,
            consequence,
        )
        return True

    def contains(self, detections: sv.Detections, labels: list[str]) -> np.ndarray:
        """Bool per detection: in the zone by mask overlap (bottom-centre point without a mask)."""
        n = len(detections)
        if n == 0:
            return np.zeros(0, dtype=bool)
        by_point = self._points_inside(detections.get_anchors_coordinates(sv.Position.BOTTOM_CENTER))
        if detections.mask is None:
            inside = by_point
        else:
            fraction = self.overlap(detections.mask, n)
            inside = np.where(np.isnan(fraction), by_point, fraction >= self.min_overlap)
        if self.labels is not None:
            inside &= np.array([label in self.labels for label in labels], dtype=bool)
        return inside

    def _points_inside(self, points: np.ndarray) -> np.ndarray:
        """Bool per (x, y): inside the polygon or on its edge (no raster: works whatever the frame size)."""
        contour = self.polygon.reshape(-1, 1, 2)
        return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0 for x, y in points])

    def overlap(self, masks: sv.CompactMask | np.ndarray, n: int) -> np.ndarray:
        """Fraction of each mask's pixels inside the zone (NaN for an empty mask)."""
        out = np.full(n, np.nan)
        compact = isinstance(masks, sv.CompactMask)
        raster = self.fit(masks.image_shape if compact else masks.shape[1:])
        rh, rw = raster.shape
        areas = np.asarray(masks.area) if compact else None
        for i in range(n):
            if compact:
                crop = masks.crop(i)
                x0, y0 = (int(v) for v in masks.offsets[i])
                area = int(areas[i])
            else:
                crop, x0, y0 = np.asarray(masks[i], dtype=bool), 0, 0
                area = int(crop.sum())
            if area == 0:
                continue
            # The crop's window in the raster, clipped to both (a crop may start left of / above the image).
            cx0, cy0 = max(0, -x0), max(0, -y0)
            x1, y1 = min(x0 + crop.shape[1], rw), min(y0 + crop.shape[0], rh)
            if x1 <= x0 + cx0 or y1 <= y0 + cy0:
                out[i] = 0.0
                continue
            window = raster[y0 + cy0 : y1, x0 + cx0 : x1]
            part = crop[cy0 : cy0 + window.shape[0], cx0 : cx0 + window.shape[1]]
            out[i] = np.count_nonzero(part & window) / area
        return out


class Line:
    def __init__(self, name: str, cfg: LineConfig) -> None:
        self.name = name
        self.labels = set(cfg.labels) if cfg.labels is not None else None
        self._line = sv.LineZone(
            start=sv.Point(*cfg.start),
            end=sv.Point(*cfg.end),
            triggering_anchors=(ANCHORS[cfg.anchor],),
            minimum_crossing_threshold=cfg.min_frames,
        )

    def crossings(self, detections: sv.Detections, labels: list[str]) -> list[str | None]:
        """Per detection: "in", "out" or None. Needs tracker ids (LineZone follows each track's side)."""
        n = len(detections)
        keep = np.ones(n, dtype=bool)
        if self.labels is not None:
            keep = np.array([label in self.labels for label in labels], dtype=bool)
        index = np.flatnonzero(keep)
        crossed_in, crossed_out = self._line.trigger(detections[keep] if n else detections)
        out: list[str | None] = [None] * n
        for j, i in enumerate(index):
            direction = "in" if crossed_in[j] else "out" if crossed_out[j] else None
            if direction is not None:
                out[i] = direction
        return out


class CameraZones:
    """update(tracked detections, frame shape) -> (zones each detection is in, lines each crossed this frame)."""

    def __init__(self, zones: dict[str, ZoneConfig], lines: dict[str, LineConfig], camera: str = "") -> None:
        self.zones = [Zone(name, cfg, camera) for name, cfg in zones.items()]
        self.lines = [Line(name, cfg) for name, cfg in lines.items()]

    def update(
        self, detections: sv.Detections, frame: FrameShape | None = None
    ) -> tuple[list[list[str]], list[list[tuple[str, str]]]]:
        """frame: (height, width) of the image the detections are from (zones are clipped to it)."""
        n = len(detections)
        labels = labels_of(detections) if n else []
        in_zones: list[list[str]] = [[] for _ in range(n)]
        for zone in self.zones:
            if frame is not None:
                zone.fit(frame)  # also when nothing is detected: a zone outside the frame is reported at once
            for i in np.flatnonzero(zone.contains(detections, labels)):
                in_zones[i].append(zone.name)
        crossed: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        if detections.tracker_id is not None:
            for line in self.lines:
                for i, direction in enumerate(line.crossings(detections, labels)):
                    if direction is not None:
                        crossed[i].append((line.name, direction))
        return in_zones, crossed
