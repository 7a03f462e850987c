"""The parity checks of a backend, through `streamseg run` as a user runs it.

`run_cameras` runs the CLI on three file cameras (bus.jpg, zidane.jpg, and bikes.mp4 at 5 fps: 50 frames) with
the given `model:` section and returns each camera's detections per frame (JSON lines, masks as RLE). Then:

- `check_ultralytics`: on bus.jpg and zidane.jpg the objects Ultralytics' own predict finds (tests/data/
  ultralytics_reference.json): same classes in the same order, box IoU >= 0.9, mask IoU >= 0.85 (the card's
  thresholds), scores within 0.025 (the reference is the int8 model; the fp32 files score within 0.02 of it);
- `check_same`: on every frame of the video, the same detections as onnxruntime's on the same network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parent / "data" / "ultralytics_reference.json"
SCORE_VS_INT8 = 0.025


def run_cameras(tmp: Path, model: str, shared: Path, env: dict[str, str] | None = None) -> dict[str, list[dict]]:
    media = shared / "media"
    config = tmp / "cameras.yaml"
    config.write_text(
        f"""
defaults:
  model: {model}
  mask_format: rle
  tracker: {{type: none}}
cameras:
  bus:
    source: {{url: {media / "bus.jpg"}}}
    outputs: {{jsonl: {{path: out/bus.jsonl}}}}
  zidane:
    source: {{url: {media / "zidane.jpg"}}}
    outputs: {{jsonl: {{path: out/zidane.jsonl}}}}
  bikes:
    source: {{url: {media / "bikes.mp4"}}}
    fps: 5
    outputs: {{jsonl: {{path: out/bikes.jsonl}}}}
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", str(config)], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = {}
    for camera in ("bus", "zidane", "bikes"):
        lines = [json.loads(line) for line in (tmp / "out" / f"{camera}.jsonl").read_text().splitlines()]
        frames[camera] = [line for line in lines if line["topic"] == "detections"]
    return frames


def _box_iou(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a), np.asarray(b)
    wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
    inter = wh[0] * wh[1]
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _mask(rle: dict) -> np.ndarray:
    from pycocotools import mask

    counts = rle["counts"].encode() if isinstance(rle["counts"], str) else rle["counts"]
    return mask.decode({"size": rle["size"], "counts": counts}).astype(bool)


def _mask_iou(a: dict, b: dict) -> float:
    ma, mb = _mask(a), _mask(b)
    return float((ma & mb).sum() / max((ma | mb).sum(), 1))


def check_ultralytics(frames: dict[str, list[dict]]) -> None:
    cases = {c["image"]: c for c in json.loads(REFERENCE.read_text())["results"] if c["task"] == "segment"}
    for camera in ("bus", "zidane"):
        (frame,) = frames[camera]
        case = cases[f"{camera}.jpg"]
        dets = frame["detections"]
        assert [d["class_id"] for d in dets] == case["class_ids"], camera
        np.testing.assert_allclose([d["score"] for d in dets], case["scores"], atol=SCORE_VS_INT8)
        for det, box, ref in zip(dets, case["boxes"], case["masks"], strict=True):
            assert _box_iou(det["box"], box) >= 0.9, (camera, det["box"], box)
            assert _mask_iou(det["mask"], ref) >= 0.85, camera


def check_same(ours: list[dict], theirs: list[dict], conf: float = 0.25) -> int:
    """Frame by frame the same detections (class, box within 1 px, score within 0.01, mask IoU >= 0.9); a
    detection only one side has must be a borderline one (score within 0.01 of `conf`). Returns how many matched."""
    assert [f["frame"] for f in ours] == [f["frame"] for f in theirs]
    matched = 0
    for a, b in zip(ours, theirs, strict=True):
        left = list(b["detections"])
        for det in a["detections"]:
            twin = next(
                (o for o in left if o["class_id"] == det["class_id"] and _box_iou(o["box"], det["box"]) >= 0.95), None
            )
            if twin is None:
                assert det["score"] < conf + 0.01, (a["frame"], det)
                continue
            left.remove(twin)
            matched += 1
            np.testing.assert_allclose(det["box"], twin["box"], atol=1.0)
            assert abs(det["score"] - twin["score"]) <= 0.01, (a["frame"], det, twin)
            assert _mask_iou(det["mask"], twin["mask"]) >= 0.9, (a["frame"], det["label"])
        assert all(o["score"] < conf + 0.01 for o in left), (a["frame"], left)
    return matched
