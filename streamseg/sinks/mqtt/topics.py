"""MQTT topics and payloads beyond the wire format of detections (serialize.py): counts per label, zone and
line, snapshots, label topic levels, and the shrunk form of a payload too large for the broker."""

from __future__ import annotations

import json
import re
from collections import Counter

import cv2
import numpy as np
import supervision as sv

from streamseg.config.snapshots import SnapshotsConfig
from streamseg.detections import labels_of
from streamseg.sinks.base import FrameResult
from streamseg.sinks.serialize import dumps

_NOT_IN_A_LEVEL = re.compile(r"[/+#\x00-\x1f\x7f-\x9f]")


def label_topic(label: str) -> str:
    """A label as one topic level: the level separator, wildcards and control characters become '_'."""
    return _NOT_IN_A_LEVEL.sub("_", label) or "_"


def shrink(kind: str | None, payload: bytes) -> tuple[bytes, str] | None:
    """A smaller form of a detections / events payload and what it lost, or None when nothing can go.

    detections: every detection's `mask`; events: the line crossings of `before` / `after` but the latest.
    The payload then lists what was cut in `truncated` (JSON paths), so consumers can tell (docs/mqtt.md).
    """
    if kind not in ("detections", "events"):
        return None
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    cut = []
    if kind == "detections":
        found = [d for d in message.get("detections") or [] if isinstance(d, dict) and "mask" in d]
        for detection in found:
            del detection["mask"]
        if found:
            cut.append("detections.mask")
        what = "masks"
    else:
        for key in ("before", "after"):
            state = message.get(key)
            if isinstance(state, dict) and isinstance(state.get("crossings"), list) and len(state["crossings"]) > 1:
                state["crossings"] = state["crossings"][-1:]
                cut.append(f"{key}.crossings")
        what = "older line crossings"
    if not cut:
        return None
    message["truncated"] = [*message.get("truncated", []), *cut]
    return dumps(message).encode(), what


def line_payload(counts: dict[str, Counter[str]]) -> dict:
    """`{"in": n, "out": n, "labels": {label: {"in": n, "out": n}}}`: crossings since the daemon started."""
    labels = sorted(counts["in"].keys() | counts["out"].keys())
    return {
        "in": sum(counts["in"].values()),
        "out": sum(counts["out"].values()),
        "labels": {label: {"in": counts["in"][label], "out": counts["out"][label]} for label in labels},
    }


def zone_counts(result: FrameResult) -> dict[str, int]:
    """`zones/{zone}/{label}` -> confirmed tracks of that label in the zone now."""
    det = result.detections
    if not any(result.zones):
        return {}
    counts: Counter[str] = Counter()
    for label, in_zones, ok in zip(labels_of(det), result.zones, _confirmed(det), strict=True):
        if ok:
            counts.update(f"zones/{zone}/{label_topic(label)}" for zone in in_zones)
    return dict(counts)


def snapshot_jpeg(image: np.ndarray, box: list[float] | None, cfg: SnapshotsConfig) -> bytes:
    """The frame as JPEG, cropped to `box` plus a margin of a quarter of its size on each side when `crop`."""
    if cfg.crop and box:
        h, w = image.shape[:2]
        x1, y1, x2, y2 = box
        mx, my = (x2 - x1) / 4, (y2 - y1) / 4
        xa, ya = max(0, int(x1 - mx)), max(0, int(y1 - my))
        xb, yb = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if xb > xa and yb > ya:
            image = image[ya:yb, xa:xb]
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, cfg.quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def label_counts(result: FrameResult) -> dict[str, int]:
    """`{label}` -> number in view; with tracking, only confirmed tracks count (an unconfirmed one may be noise)."""
    det = result.detections
    return dict(Counter(label_topic(label) for label, ok in zip(labels_of(det), _confirmed(det), strict=True) if ok))


def _confirmed(det: sv.Detections) -> list[bool]:
    return [True] * len(det) if det.tracker_id is None else [int(t) >= 0 for t in det.tracker_id]
