"""Parity with Ultralytics' predict on the same ONNX files and images.

tests/data/ultralytics_reference.json is written by tools/make_reference.py (Ultralytics' own
predict, masks mapped to the image with its scale_masks). The card requires: same objects, box IoU
>= 0.9, mask IoU >= 0.85.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg.engines import create_engine
from streamseg.models import YoloModel

pycocotools_mask = pytest.importorskip("pycocotools.mask")
# pycocotools (numpy 2) warns about its own __array__ use; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "ultralytics_reference.json"
CASES = json.loads(REFERENCE.read_text())["results"]


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
    inter = wh[0] * wh[1]
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['model']}-{c['image']}")
def test_matches_ultralytics(case: dict, seg_model: Path, bus_jpg: Path) -> None:
    shared = seg_model.parent.parent
    image = cv2.imread(str(shared / "media" / case["image"]))
    engine = create_engine(shared / "models" / case["model"], providers=["cpu"], threads=2)
    det = YoloModel(engine.info).predict(engine, image)

    assert det.class_id.tolist() == case["class_ids"]  # same objects, same order (by score)
    np.testing.assert_allclose(det.confidence, case["scores"], atol=1e-3)
    for box, ref in zip(det.xyxy, np.array(case["boxes"]), strict=True):
        assert _box_iou(box, ref) >= 0.9
    if case["task"] != "segment":
        assert det.mask is None
        return
    for i, rle in enumerate(case["masks"]):
        ref = pycocotools_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        ours = det.mask[i]
        iou = (ours & ref).sum() / (ours | ref).sum()
        assert iou >= 0.85, f"mask {i}: IoU {iou:.3f}"
