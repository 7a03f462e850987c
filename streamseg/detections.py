"""Small facts about the one detections type (`supervision.Detections`) that several stages need."""

from __future__ import annotations

import supervision as sv

KEYPOINTS = "keypoints"  # Detections.data key of pose models: float32 (n, keypoints, 2 or 3) x, y[, visibility]


def labels_of(detections: sv.Detections) -> list[str]:
    """Each detection's label: `data["class_name"]` when the model named it, else its class id as text."""
    names = detections.data.get("class_name")
    if names is not None:
        return [str(n) for n in names]
    ids = detections.class_id if detections.class_id is not None else [-1] * len(detections)
    return [str(int(c)) for c in ids]
