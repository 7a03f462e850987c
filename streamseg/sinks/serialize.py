"""The wire format of detections: one place for the predict CLI, the JSON-lines sink and MQTT.

Masks leave the process in one of three formats (`mask_format`):

- ``polygon``: ``{"format": "polygon", "points": [[x, y], ...]}``, the largest external contour of the
  mask, simplified with Douglas-Peucker (``polygon_tolerance`` pixels), in image pixel coordinates.
  An empty mask gives ``"points": []``.
- ``rle``: ``{"format": "rle", "size": [h, w], "counts": str}``, the full-image COCO RLE exactly as
  ``pycocotools.mask.encode`` writes it (column-major, compressed counts string), so consumers can call
  ``pycocotools.mask.decode`` on it directly.
- ``none``: the detection has no ``"mask"`` key at all (nor does it when the model gives no masks).

Pose and seg+pose (multitask) models add ``"keypoints": [[x, y, visibility], ...]`` to each detection: one entry
per keypoint of the model (17 COCO keypoints, in COCO's order, for the usual pose models), x and y in image pixels
(2 decimals), visibility the model's score in 0..1 (4 decimals; absent, ``[x, y]``, when the model has none).
"""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np
import supervision as sv

from streamseg.detections import KEYPOINTS, labels_of
from streamseg.sinks.base import FrameResult
from streamseg.vocab import MaskFormat

SCHEMA_VERSION = 1
MASK_FORMATS = tuple(MaskFormat)


def dumps(payload: Any) -> str:
    """Compact JSON (no spaces): the payloads go over the network every frame."""
    return json.dumps(payload, separators=(",", ":"))


# -- detections ------------------------------------------------------------------------------------------


def detection_dicts(
    detections: sv.Detections, mask_format: str = "polygon", *, polygon_tolerance: float = 1.0
) -> list[dict]:
    """One JSON-ready dict per detection, in the order of `detections`.

    Keys: ``track_id`` (only when the detections are tracked; ``None`` for unconfirmed tracks, -1),
    ``class_id``, ``label``, ``score`` (4 decimals), ``box`` (xyxy, 2 decimals, image pixels) and
    ``mask`` and ``keypoints`` (see the module docstring).
    """
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {', '.join(MASK_FORMATS)}, not {mask_format!r}")
    n = len(detections)
    if n == 0:
        return []
    # float64 before rounding: float32 values would print as 12.340000152587891
    boxes = np.round(np.asarray(detections.xyxy, dtype=np.float64), 2).tolist()
    scores = (
        np.round(np.asarray(detections.confidence, dtype=np.float64), 4).tolist()
        if detections.confidence is not None
        else [None] * n
    )
    class_ids = np.asarray(detections.class_id).astype(int).tolist() if detections.class_id is not None else [-1] * n
    labels = labels_of(detections)
    tracks = None
    if detections.tracker_id is not None:
        tracks = [None if t < 0 else t for t in np.asarray(detections.tracker_id).astype(int).tolist()]
    masks = detections.mask if mask_format != "none" else None
    keypoints = _keypoint_lists(detections.data.get(KEYPOINTS))

    out = []
    for i in range(n):
        d: dict[str, Any] = {} if tracks is None else {"track_id": tracks[i]}
        d["class_id"] = class_ids[i]
        d["label"] = labels[i]
        d["score"] = scores[i]
        d["box"] = boxes[i]
        if masks is not None:
            crop, x0, y0, image_shape = _mask_crop(masks, i)
            if mask_format == "polygon":
                d["mask"] = {"format": "polygon", "points": crop_polygon(crop, x0, y0, polygon_tolerance)}
            else:
                h, w = image_shape
                d["mask"] = {"format": "rle", "size": [h, w], "counts": crop_to_coco_rle(crop, x0, y0, h, w)}
        if keypoints is not None:
            d["keypoints"] = keypoints[i]
        out.append(d)
    return out


def _keypoint_lists(keypoints: Any) -> list | None:
    """(n, k, 2|3) keypoints as nested lists: x, y to 2 decimals, the visibility score to 4."""
    if keypoints is None:
        return None
    kpts = np.array(keypoints, dtype=np.float64)  # a copy: rounded in place below
    kpts[..., :2] = np.round(kpts[..., :2], 2)
    kpts[..., 2:] = np.round(kpts[..., 2:], 4)
    return kpts.tolist()


def _mask_crop(masks: Any, i: int) -> tuple[np.ndarray, int, int, tuple[int, int]]:
    """The i-th mask as (bool crop, x0, y0, (H, W)): CompactMask gives its crop; a dense array is whole."""
    if isinstance(masks, sv.CompactMask):
        x0, y0 = (int(v) for v in masks.offsets[i])
        h, w = masks.image_shape
        return masks.crop(i), x0, y0, (int(h), int(w))
    dense = np.asarray(masks[i], dtype=bool)
    return dense, 0, 0, (dense.shape[0], dense.shape[1])


def frame_payload(result: FrameResult, mask_format: str, *, publish_ts: float, polygon_tolerance: float = 1.0) -> dict:
    """The DESIGN `{prefix}/{camera}/detections` payload for one processed frame."""
    return {
        "schema_version": SCHEMA_VERSION,
        "camera": result.camera,
        "frame": int(result.frame),
        "pts": round(float(result.pts), 6),
        "capture_ts": round(float(result.capture_ts), 6),
        "publish_ts": round(float(publish_ts), 6),
        "width": int(result.width),
        "height": int(result.height),
        "detections": _cached_detection_dicts(result, mask_format, polygon_tolerance),
    }


def _cached_detection_dicts(result: FrameResult, mask_format: str, polygon_tolerance: float) -> list[dict]:
    """Contours and RLEs are the costly part: the JSON-lines and MQTT sinks of a camera share one encoding.

    Two sinks racing on the same frame may both compute it; the result is identical either way.
    """
    key = (mask_format, polygon_tolerance)
    dicts = result.encoded.get(key)
    if dicts is None:
        dicts = result.encoded[key] = detection_dicts(
            result.detections, mask_format, polygon_tolerance=polygon_tolerance
        )
    return dicts


# -- polygon ---------------------------------------------------------------------------------------------


def crop_polygon(crop: np.ndarray, x0: int, y0: int, tolerance: float = 1.0) -> list[list[int]]:
    """Largest external contour of a bool crop, simplified, as [[x, y], ...] in image coordinates.

    The points are pixel centres of mask pixels on the mask's boundary (OpenCV's contour convention).
    """
    if crop.size == 0 or not crop.any():
        return []
    contours, _ = cv2.findContours(crop.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # area first, then point count: one-pixel-wide blobs all have area 0
    largest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    if tolerance > 0:
        largest = cv2.approxPolyDP(largest, tolerance, True)
    points = largest.reshape(-1, 2) + np.array([x0, y0])
    return points.astype(int).tolist()


# -- COCO RLE --------------------------------------------------------------------------------------------


def crop_to_coco_rle(crop: np.ndarray, x0: int, y0: int, height: int, width: int) -> str:
    """Full-image COCO RLE counts string of a bool crop placed at (x0, y0) in a height x width image.

    Works from the crop alone: in column-major order, image pixel (y, x) is at index x * height + y, so each
    foreground run of a crop column maps to one interval of the full-image scan; the background runs are
    the gaps between those intervals (plus the leading and trailing background).
    """
    starts, ends = _foreground_intervals(crop, x0, y0, height)
    return coco_counts_string(_runs_from_intervals(starts, ends, height * width))


def _foreground_intervals(crop: np.ndarray, x0: int, y0: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) indices, in the full image's column-major scan, of each vertical foreground run."""
    crop_h, crop_w = crop.shape
    # A background row under every column keeps runs from joining across crop columns, then a leading
    # background pixel lets one diff find every rising and falling edge.
    padded = np.zeros((crop_h + 1, crop_w), dtype=np.int8)
    padded[:crop_h] = crop
    flat = np.concatenate(([0], padded.ravel(order="F")))
    edges = np.diff(flat)
    rise, fall = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # positions in the padded scan

    def to_image(pos: np.ndarray) -> np.ndarray:
        col, row = np.divmod(pos, crop_h + 1)
        return (col + x0).astype(np.int64) * height + y0 + row

    starts, ends = to_image(rise), to_image(fall)
    # A run reaching the bottom of the image continues at the top of the next column (full-height crops).
    joined = np.flatnonzero(ends[:-1] == starts[1:])
    return np.delete(starts, joined + 1), np.delete(ends, joined)


def _runs_from_intervals(starts: np.ndarray, ends: np.ndarray, area: int) -> list[int]:
    """COCO run lengths (background first) from sorted, disjoint foreground intervals."""
    if len(starts) == 0:
        return [area]
    bounds = np.empty(2 * len(starts) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, area
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    runs = np.diff(bounds).tolist()
    return runs[:-1] if runs[-1] == 0 else runs  # pycocotools stops at the last foreground pixel


def coco_counts_string(counts: list[int]) -> str:
    """Compress run lengths the way pycocotools' rleToString does (LEB128-like, 5 bits a char).

    From the third run on, each count is written as the difference from the count two before; each value
    goes out 5 bits at a time, low bits first, with 0x20 marking "more follows", offset by 48 into ASCII.
    """
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as in C on a signed long
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)
