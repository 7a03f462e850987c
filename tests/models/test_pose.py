"""Pose and seg+pose (multitask) decoding on graphs whose outputs are known (tests/models/pose_graphs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from supervision.detection.compact_mask import CompactMask

from streamseg.detections import KEYPOINTS
from streamseg.engines import create_engine
from streamseg.errors import ModelError
from streamseg.models import YoloModel
from streamseg.sinks.annotate import annotate
from streamseg.sinks.serialize import detection_dicts
from tests.models import pose_graphs
from tests.sinks.schemas import validator

# A 128 x 96 image fits the 64 x 64 input at scale 0.5 with 8 rows of padding on top: image = (input - pad) * 2.
IMAGE = np.zeros((96, 128, 3), dtype=np.uint8)
BOX_IMAGE = [44.0, 8.0, 84.0, 88.0]  # input box cx 32, cy 32, w 20, h 40
KEYPOINTS_IMAGE = np.array(
    [[40.0 + 2 * k, 12.0 + 4 * k, 0.9 if k % 2 == 0 else 0.1] for k in range(17)], dtype=np.float32
)


def _decode(path: Path, **kwargs) -> tuple[YoloModel, sv.Detections]:
    engine = create_engine(path, providers=["cpu"], threads=1)
    model = YoloModel(engine.info, **kwargs)
    with engine:
        return model, model.predict(engine, IMAGE)


def test_pose_head_gives_boxes_and_keypoints(tmp_path: Path) -> None:
    model, det = _decode(pose_graphs.pose_graph(tmp_path / "pose.onnx"))
    assert model.task == "pose" and model.kpt_shape == (17, 3)
    assert len(det) == 1  # the shifted twin is suppressed by NMS, the 0.1 box is under conf
    np.testing.assert_allclose(det.xyxy[0], BOX_IMAGE, atol=1e-4)
    assert det.confidence[0] == pytest.approx(0.9) and det.class_id.tolist() == [0]
    assert det.mask is None and list(det.data["class_name"]) == ["person"]
    kpts = det.data[KEYPOINTS]
    assert kpts.dtype == np.float32 and kpts.shape == (1, 17, 3)
    np.testing.assert_allclose(kpts[0], KEYPOINTS_IMAGE, atol=1e-4)


def test_multitask_head_gives_masks_and_keypoints(tmp_path: Path) -> None:
    model, det = _decode(pose_graphs.multitask_graph(tmp_path / "multitask.onnx"))
    assert model.task == "multitask"
    assert len(det) == 1
    np.testing.assert_allclose(det.xyxy[0], BOX_IMAGE, atol=1e-4)
    np.testing.assert_allclose(det.data[KEYPOINTS][0], KEYPOINTS_IMAGE, atol=1e-4)
    # prototype 0 is positive on input rows 8..40 = image rows 0..64; the box covers columns 44..84, rows 8..88
    assert isinstance(det.mask, CompactMask)
    expected = np.zeros(IMAGE.shape[:2], dtype=bool)
    expected[8:64, 44:84] = True
    np.testing.assert_array_equal(det.mask[0], expected)


def test_keypoints_follow_the_detections_they_belong_to(tmp_path: Path) -> None:
    """Filtering, as every stage does, keeps each detection's own keypoints; nothing found: (0, 17, 3)."""
    _, det = _decode(pose_graphs.pose_graph(tmp_path / "pose.onnx"), conf=0.05, iou=0.95)
    assert len(det) == 3
    order = np.argsort(-det.confidence)
    np.testing.assert_allclose(det.data[KEYPOINTS][order[0]], KEYPOINTS_IMAGE, atol=1e-4)
    low = det[det.confidence < 0.2]
    assert low.data[KEYPOINTS].shape == (1, 17, 3)
    np.testing.assert_allclose(low.data[KEYPOINTS][0, :, 0], KEYPOINTS_IMAGE[:, 0] + 20, atol=1e-4)  # shifted 10
    _, none = _decode(pose_graphs.pose_graph(tmp_path / "pose.onnx"), conf=0.95)
    assert len(none) == 0 and none.data[KEYPOINTS].shape == (0, 17, 3)


@pytest.mark.parametrize("graph", ["pose", "multitask"])
def test_head_is_recognised_from_its_output_shapes(tmp_path: Path, graph: str) -> None:
    """No `task` nor `kpt_shape`: one class named and 51 channels over make 17 (x, y, visibility) keypoints."""
    meta = {"names": pose_graphs.METADATA_NAMES, "imgsz": "[64, 64]"}
    build = pose_graphs.pose_graph if graph == "pose" else pose_graphs.multitask_graph
    model, det = _decode(build(tmp_path / f"{graph}.onnx", metadata=meta))
    assert model.task == graph and model.kpt_shape == (17, 3)
    np.testing.assert_allclose(det.data[KEYPOINTS][0], KEYPOINTS_IMAGE, atol=1e-4)
    assert (det.mask is not None) == (graph == "multitask")


def test_keypoints_without_visibility(tmp_path: Path) -> None:
    model, det = _decode(pose_graphs.pose_graph(tmp_path / "pose2.onnx", kpt_dims=2))
    assert model.kpt_shape == (17, 2)
    assert det.data[KEYPOINTS].shape == (1, 17, 2)
    np.testing.assert_allclose(det.data[KEYPOINTS][0], KEYPOINTS_IMAGE[:, :2], atol=1e-4)
    (d,) = detection_dicts(det, "none")
    assert d["keypoints"][0] == [40.0, 12.0]
    validator("detections").validate(_payload([d]))


def test_kpt_shape_that_does_not_fit_the_head_is_a_model_error(tmp_path: Path) -> None:
    meta = {"task": "pose", "kpt_shape": "[30, 3]", "names": pose_graphs.METADATA_NAMES, "imgsz": "[64, 64]"}
    with pytest.raises(ModelError) as err:
        _decode(pose_graphs.pose_graph(tmp_path / "bad.onnx", metadata=meta))
    message = str(err.value)
    assert "bad.onnx" in message and "kpt_shape [30, 3]" in message and "\n" not in message


def _payload(detections: list[dict]) -> dict:
    return {
        "schema_version": 1,
        "camera": "c",
        "frame": 0,
        "pts": 0.0,
        "capture_ts": 1.0,
        "publish_ts": 1.0,
        "width": 128,
        "height": 96,
        "detections": detections,
    }


@pytest.mark.parametrize("mask_format", ["polygon", "rle"])
def test_keypoints_in_the_wire_format(tmp_path: Path, mask_format: str) -> None:
    _, det = _decode(pose_graphs.multitask_graph(tmp_path / "multitask.onnx"))
    (d,) = detection_dicts(det, mask_format)
    assert d["mask"]["format"] == mask_format
    assert d["keypoints"] == [[40.0 + 2 * k, 12.0 + 4 * k, 0.9 if k % 2 == 0 else 0.1] for k in range(17)]
    validator("detections").validate(_payload([d]))
    # a keypoint that is not [x, y] or [x, y, v] breaks the schema
    bad = {**d, "keypoints": [[1.0, 2.0, 0.5, 7.0]]}
    assert not validator("detections").is_valid(_payload([bad]))


def test_annotate_draws_the_seen_keypoints_and_the_skeleton(tmp_path: Path) -> None:
    """A skeleton edge joins two seen keypoints; a hidden keypoint (visibility 0.1) gets no dot."""
    big = np.zeros((480, 640, 3), dtype=np.uint8)
    det = sv.Detections(
        xyxy=np.array([[100, 50, 500, 450]], dtype=np.float32),
        confidence=np.array([0.9], dtype=np.float32),
        class_id=np.array([0]),
        data={"class_name": np.array(["person"])},
    )
    kpts = np.zeros((1, 17, 3), dtype=np.float32)
    kpts[0, :, :2] = np.random.default_rng(3).uniform((150, 100), (400, 300), (17, 2))
    kpts[0, :, 2] = 0.9
    kpts[0, 3] = (600, 470, 0.1)  # the left ear, hidden, away from every other keypoint and the box
    det.data[KEYPOINTS] = kpts
    plain = annotate(big.copy(), _without_keypoints(det))
    drawn = annotate(big.copy(), det)
    changed = np.any(drawn != plain, axis=2)
    (x0, y0), (x3, y3) = kpts[0, 0, :2].astype(int), kpts[0, 3, :2].astype(int)
    assert changed[y0, x0]  # the nose's dot
    assert not changed[y3, x3]  # the hidden ear: no dot, and no edge ends there
    # COCO skeleton edge left shoulder (5) - right shoulder (6): its midpoint is painted
    mid = ((kpts[0, 5, :2] + kpts[0, 6, :2]) / 2).astype(int)
    assert changed[mid[1], mid[0]]
    det.data[KEYPOINTS][0, 3, 2] = 0.9  # seen: now the ear has its dot
    assert np.any(annotate(big.copy(), det)[y3, x3] != plain[y3, x3])


def _without_keypoints(det: sv.Detections) -> sv.Detections:
    out = det[np.arange(len(det))]
    del out.data[KEYPOINTS]
    return out


def test_predict_json_has_keypoints(tmp_path: Path) -> None:
    import cv2

    from tests.cli.test_cli import streamseg

    model = pose_graphs.multitask_graph(tmp_path / "multitask.onnx")
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), IMAGE)
    proc = streamseg("predict", "--model", str(model), "--source", str(image))
    assert proc.returncode == 0, proc.stderr
    (d,) = json.loads(proc.stdout)["detections"]
    assert d["keypoints"] == [[40.0 + 2 * k, 12.0 + 4 * k, 0.9 if k % 2 == 0 else 0.1] for k in range(17)]
    assert d["mask"]["format"] == "polygon" and d["box"] == BOX_IMAGE
