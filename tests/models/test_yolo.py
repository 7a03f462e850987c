"""YoloModel on the real models and images: expected objects, valid boxes and masks, bad graphs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv
from supervision.detection.compact_mask import CompactMask

from streamseg.engines import create_engine
from streamseg.errors import ModelError
from streamseg.models import YoloModel
from streamseg.models.yolo import nms


class Predictor:
    """The decoder and an engine to run it with."""

    def __init__(self, path: Path, **kwargs) -> None:
        self.engine = create_engine(path, providers=["cpu"], threads=2)
        self.model = YoloModel(self.engine.info, **kwargs)

    def __call__(self, image: np.ndarray) -> sv.Detections:
        return self.model.predict(self.engine, image)


def _model(path: Path, **kwargs) -> Predictor:
    return Predictor(path, **kwargs)


@pytest.fixture(scope="module")
def seg(seg_model: Path) -> Predictor:
    return _model(seg_model)


def _check_valid(det: sv.Detections, image: np.ndarray) -> None:
    h, w = image.shape[:2]
    assert det.xyxy.dtype == np.float32 and det.xyxy.shape == (len(det), 4)
    assert (det.xyxy[:, :2] >= 0).all() and (det.xyxy[:, 2] <= w).all() and (det.xyxy[:, 3] <= h).all()
    assert (det.xyxy[:, 2:] >= det.xyxy[:, :2]).all()
    assert len(det.data["class_name"]) == len(det)
    assert isinstance(det.mask, CompactMask) and len(det.mask) == len(det)
    assert det.mask.shape == (len(det), h, w)
    for i in range(len(det)):
        mask = det.mask[i]
        area = int(mask.sum())
        assert area > 0
        x1, y1, x2, y2 = det.xyxy[i]
        inside = mask[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))].sum()
        assert inside / area > 0.95


def test_bus_has_one_bus_and_people(seg: Predictor, bus_jpg: Path) -> None:
    image = cv2.imread(str(bus_jpg))
    det = seg(image)
    labels = list(det.data["class_name"])
    assert labels.count("bus") == 1
    assert labels.count("person") in (3, 4)
    assert set(det.class_id.tolist()) <= {0, 5}
    _check_valid(det, image)


def test_zidane_has_two_people(seg: Predictor, zidane_jpg: Path) -> None:
    image = cv2.imread(str(zidane_jpg))
    det = seg(image)
    assert list(det.data["class_name"]) == ["person", "person"]
    _check_valid(det, image)


def test_steps_equal_predict(seg: Predictor, bus_jpg: Path) -> None:
    image = cv2.imread(str(bus_jpg))
    tensor, params = seg.model.preprocess(image)
    det = seg.model.postprocess(seg.engine.infer(tensor), params, image.shape[:2])
    again = seg(image)
    np.testing.assert_array_equal(det.xyxy, again.xyxy)
    assert seg.model.task == "segment" and seg.model.names[5] == "bus"


def test_classes_filter_and_max_det(seg_model: Path, bus_jpg: Path) -> None:
    image = cv2.imread(str(bus_jpg))
    assert list(_model(seg_model, classes=[5])(image).data["class_name"]) == ["bus"]
    assert len(_model(seg_model, max_det=2)(image)) == 2


def test_nothing_above_conf_gives_empty_detections(seg_model: Path, bus_jpg: Path) -> None:
    det = _model(seg_model, conf=0.999)(cv2.imread(str(bus_jpg)))
    assert len(det) == 0
    assert det.data["class_name"].shape == (0,)
    assert isinstance(det.mask, CompactMask) and len(det.mask) == 0


def test_detection_model_gives_boxes_without_masks(det_model: Path, bus_jpg: Path) -> None:
    model = _model(det_model)
    det = model(cv2.imread(str(bus_jpg)))
    assert model.model.task == "detect"
    assert det.mask is None
    assert "bus" in det.data["class_name"]


@pytest.mark.parametrize("fixture", ["untrained_v8_640", "untrained_11_640"])
def test_untrained_640_graphs_decode(fixture: str, request: pytest.FixtureRequest, bus_jpg: Path) -> None:
    model = _model(request.getfixturevalue(fixture))
    assert model.engine.info.imgsz == (640, 640)
    image = cv2.imread(str(bus_jpg))
    det = model(image)
    assert isinstance(det, sv.Detections)
    assert isinstance(det.mask, CompactMask) and len(det.mask) == len(det)
    # a low threshold forces the mask path to run on random outputs as well
    low = _model(request.getfixturevalue(fixture), conf=0.0, max_det=20)(image)
    assert len(low) <= 20 and isinstance(low.mask, CompactMask) and len(low.mask) == len(low)


def _numpy_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """torchvision semantics: highest score first, drop boxes with IoU > iou."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = np.array(order, dtype=int)
        if not len(rest):
            break
        wh = np.clip(np.minimum(boxes[i, 2:], boxes[rest, 2:]) - np.maximum(boxes[i, :2], boxes[rest, :2]), 0, None)
        inter = wh[:, 0] * wh[:, 1]
        order = [int(j) for j, o in zip(rest, inter / (area[i] + area[rest] - inter), strict=True) if o <= iou]
    return keep


def test_nms_matches_reference_semantics() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (300, 2))], axis=1)
    scores = rng.uniform(0.01, 1, 300).astype(np.float32)
    for iou in (0.3, 0.5, 0.7):
        assert nms(boxes, scores, iou).tolist() == _numpy_nms(boxes, scores, iou)


def _write_graph(path: Path, outputs: dict[str, list[int]], metadata: dict[str, str]) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes, values = [], []
    for name, shape in outputs.items():
        value = np.zeros(shape, dtype=np.float32)
        nodes.append(helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(value)))
        values.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])], values
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("task", "outputs", "why"),
    [
        ("segment", {"output0": [1, 116, 84]}, "expected 2 output(s)"),  # no prototypes
        ("obb", {"output0": [1, 20, 84]}, "task 'obb' is not supported"),
        ("pose", {"output0": [1, 40, 84]}, "no room for class scores and 51 keypoint values"),
        ("multitask", {"output0": [1, 88, 120]}, "expected 2 output(s)"),
        ("detect", {"output0": [1, 300, 6]}, "end2end"),  # NMS inside the graph
        ("segment", {"output0": [1, 300, 38], "output1": [1, 32, 16, 16]}, "end2end"),
        ("detect", {"output0": [1, 4, 84]}, "no room for class scores"),
    ],
)
def test_undecodable_graph_is_a_model_error(tmp_path: Path, task: str, outputs: dict, why: str) -> None:
    path = _write_graph(tmp_path / f"bad-{task}.onnx", outputs, {"task": task, "imgsz": "[64, 64]"})
    with pytest.raises(ModelError) as err:
        _model(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert "output0" in message and why in message
