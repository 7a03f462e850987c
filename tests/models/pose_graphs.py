"""Tiny ONNX graphs built with onnx.helper whose outputs are known: a pose head and the seeds' seg+pose head.

Each graph ignores its 64x64 input and returns constant Ultralytics-layout outputs (output0: box cx, cy, w, h, the
class scores, the mask coefficients of multitask heads, then 17 x (x, y, visibility) keypoints; output1: the mask
prototypes of multitask heads), so every decoded number can be worked out by hand:

- anchor 0: a person at input (cx 32, cy 32, w 20, h 40), score 0.9, with the keypoints KEYPOINTS_INPUT;
- anchor 1: the same person shifted by one pixel, score 0.6: NMS drops it;
- anchor 2: a box scoring 0.1, under conf 0.25;
- the prototypes (multitask): channel 0 is +1 on input rows 8..40 (proto rows 2..10 of 16) and -1 elsewhere,
  and anchor 0 has mask coefficient 1 on it, so its mask is the box's pixels on those rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

INPUT = 64
ANCHORS = 120  # more anchors than channels: a raw head, not an end2end export
NUM_KPTS = 17
BOX = (32.0, 32.0, 20.0, 40.0)  # cx, cy, w, h in input pixels
# keypoint k at input (20 + k, 14 + 2k); odd keypoints are hidden (visibility 0.1), even ones seen (0.9)
KEYPOINTS_INPUT = np.array(
    [[20.0 + k, 14.0 + 2 * k, 0.9 if k % 2 == 0 else 0.1] for k in range(NUM_KPTS)], dtype=np.float32
)
PROTO = 16
MASK_ROWS_INPUT = (8, 40)  # input rows (pixel edges) where prototype 0 is positive
METADATA_NAMES = "{0: 'person'}"


def head(nm: int, kpt_dims: int = 3, nc: int = 1) -> np.ndarray:
    """output0 [1, 4 + nc + nm + 17 * kpt_dims, ANCHORS] with the three anchors described above."""
    channels = 4 + nc + nm + NUM_KPTS * kpt_dims
    out = np.zeros((1, channels, ANCHORS), dtype=np.float32)
    kpts = KEYPOINTS_INPUT[:, :kpt_dims].reshape(-1)
    for anchor, (dx, score) in enumerate([(0.0, 0.9), (1.0, 0.6), (10.0, 0.1)]):
        cx, cy, w, h = BOX
        out[0, :4, anchor] = (cx + dx, cy, w, h)
        out[0, 4, anchor] = score
        if nm:
            out[0, 4 + nc, anchor] = 1.0  # coefficient of prototype 0
        out[0, 4 + nc + nm :, anchor] = kpts + dx * (np.arange(len(kpts)) % kpt_dims < 2)
    return out


def protos(nm: int = 32) -> np.ndarray:
    out = np.full((1, nm, PROTO, PROTO), 0.0, dtype=np.float32)
    out[0, 0] = -1.0
    r0, r1 = (v * PROTO // INPUT for v in MASK_ROWS_INPUT)
    out[0, 0, r0:r1] = 1.0
    return out


def write_graph(path: Path, outputs: dict[str, np.ndarray], metadata: dict[str, str]) -> Path:
    """An ONNX model returning `outputs` (constants) for any [1, 3, 64, 64] input, with `metadata` props."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes, values = [], []
    for name, value in outputs.items():
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value)))
        values.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, INPUT, INPUT])
    graph = helper.make_graph(nodes, "known-head", [images], values)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def pose_graph(path: Path, *, metadata: dict[str, str] | None = None, kpt_dims: int = 3) -> Path:
    """A YOLOv8/YOLO11 pose export as Ultralytics writes its metadata (task, kpt_shape, names, imgsz)."""
    meta = {
        "task": "pose",
        "kpt_shape": f"[{NUM_KPTS}, {kpt_dims}]",
        "names": METADATA_NAMES,
        "imgsz": f"[{INPUT}, {INPUT}]",
        "stride": "32",
    }
    return write_graph(path, {"output0": head(0, kpt_dims)}, meta if metadata is None else metadata)


def multitask_graph(path: Path, *, metadata: dict[str, str] | None = None) -> Path:
    """The seeds' seg+pose (multitask) export: boxes, classes, 32 mask coefficients, keypoints; prototypes."""
    meta = {
        "task": "multitask",
        "kpt_shape": f"[{NUM_KPTS}, 3]",
        "names": METADATA_NAMES,
        "imgsz": f"[{INPUT}, {INPUT}]",
        "stride": "32",
    }
    outputs = {"output0": head(32), "output1": protos(32)}
    return write_graph(path, outputs, meta if metadata is None else metadata)
