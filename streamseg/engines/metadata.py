"""Parse the Ultralytics export metadata (ONNX metadata_props, or the JSON header of a TensorRT engine)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.engines.base import ModelInfo
from streamseg.vocab import Task

COCO_KPT_SHAPE = (17, 3)  # Ultralytics' COCO pose heads: 17 keypoints, x, y and a visibility score


def _parse_value(value: Any) -> Any:
    """ONNX stores every value as a string (Python literals); TensorRT JSON already has real types."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        try:
            return json.loads(value)
        except ValueError:
            return value


def parse_names(value: Any, num_classes: int | None = None) -> dict[int, str]:
    """Class names as {id: label}; a dict literal, a JSON dict with string keys, or a list."""
    names = _parse_value(value) if value is not None else None
    if isinstance(names, list | tuple):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, Mapping):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            pass
    return {i: f"class{i}" for i in range(num_classes or 0)}


def parse_imgsz(value: Any) -> tuple[int, int] | None:
    imgsz = _parse_value(value) if value is not None else None
    if isinstance(imgsz, int):
        return imgsz, imgsz
    if isinstance(imgsz, list | tuple) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz):
        return int(imgsz[0]), int(imgsz[1])
    return None


def parse_int(value: Any, default: int) -> int:
    try:
        return int(_parse_value(value))
    except (TypeError, ValueError):
        return default


def parse_bool(value: Any) -> bool:
    value = _parse_value(value)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def build_model_info(
    path: Path,
    meta: Mapping[str, Any],
    *,
    input_name: str = "images",
    input_shape: Sequence[Any] = (),
    input_dtype: Any = np.float32,
    output_names: Sequence[str] = (),
    output_shapes: Sequence[Sequence[Any]] = (),
) -> ModelInfo:
    """The one ModelInfo builder: Ultralytics metadata (`meta`) completed by the engine's own I/O.

    Shapes may hold None or negative values for dynamic axes. The graph decides the batch: a fixed first axis
    is that batch, anything else is dynamic (-1), whatever the metadata says.
    """
    shape = [_dim(d) for d in input_shape]
    outputs = tuple(tuple(_dim(d) for d in s) for s in output_shapes)
    imgsz = parse_imgsz(meta.get("imgsz"))
    if imgsz is None:
        h, w = shape[2:4] if len(shape) == 4 else (None, None)
        imgsz = (h, w) if h and w else (640, 640)
    names = parse_names(meta.get("names"))
    task, kpt_shape = head_layout(meta, outputs, len(names) or None)
    num_classes = None
    if outputs and len(outputs[0]) == 3 and outputs[0][1]:
        # 4 box values, the classes, 32 mask coefficients (segment heads), the keypoints (pose heads)
        num_classes = max(outputs[0][1] - 4 - _mask_channels(task, outputs) - _kpt_channels(kpt_shape), 0)
    # The graph decides: a fixed first axis is the batch, a named/negative one is dynamic (-1). Without the
    # graph's shapes (a TensorRT file read on a machine without a GPU) the metadata is all there is.
    batch = (shape[0] or -1) if shape else parse_int(meta.get("batch"), 1)
    return ModelInfo(
        path=Path(path),
        task=task,
        names=names or parse_names(None, num_classes),
        imgsz=imgsz,
        stride=parse_int(meta.get("stride"), 32),
        batch=batch,
        input_name=input_name,
        input_dtype=np.dtype(input_dtype),
        output_names=tuple(output_names),
        output_shapes=outputs,
        kpt_shape=kpt_shape,
    )


def parse_kpt_shape(value: Any) -> tuple[int, int] | None:
    """Ultralytics' `kpt_shape`: [keypoints, 2 or 3] (x, y and, with 3, a visibility score)."""
    kpt = _parse_value(value) if value is not None else None
    ok = isinstance(kpt, list | tuple) and len(kpt) == 2 and all(isinstance(v, int) for v in kpt)
    return (int(kpt[0]), int(kpt[1])) if ok and kpt[0] >= 1 and kpt[1] in (2, 3) else None


def head_layout(
    meta: Mapping[str, Any], outputs: Sequence[Sequence[int | None]], num_classes: int | None
) -> tuple[str, tuple[int, int] | None]:
    """The head's task and keypoint shape: from the metadata (`task`, `kpt_shape`), else from the outputs.

    Without a `task`: two outputs (a head and mask prototypes) are a segment head, one a detect head; either is a
    pose head too (multitask with prototypes) when `kpt_shape` is given, or when the class names leave channels
    over that make whole (x, y, visibility) keypoints. A pose or multitask head without `kpt_shape` has the 17
    COCO keypoints.
    """
    kpt_shape = parse_kpt_shape(meta.get("kpt_shape"))
    task = str(meta.get("task") or "")
    if not task:
        protos = len(outputs) == 2
        if kpt_shape is None and num_classes and outputs and len(outputs[0]) == 3 and outputs[0][1]:
            extra = outputs[0][1] - 4 - num_classes - (_proto_channels(outputs) if protos else 0)
            if extra > 0 and extra % 3 == 0:
                kpt_shape = (extra // 3, 3)
        if kpt_shape is not None:
            task = Task.MULTITASK if protos else Task.POSE
        else:
            task = Task.SEGMENT if protos else Task.DETECT
    if task in (Task.POSE, Task.MULTITASK) and kpt_shape is None:
        kpt_shape = COCO_KPT_SHAPE
    if task not in (Task.POSE, Task.MULTITASK):
        kpt_shape = None
    return str(task), kpt_shape


def _proto_channels(outputs: Sequence[Sequence[int | None]]) -> int:
    proto = outputs[1] if len(outputs) == 2 else ()
    return proto[1] if len(proto) == 4 and isinstance(proto[1], int) else 32


def _mask_channels(task: str, outputs: Sequence[Sequence[int | None]]) -> int:
    return _proto_channels(outputs) if task in (Task.SEGMENT, Task.MULTITASK) else 0


def _kpt_channels(kpt_shape: tuple[int, int] | None) -> int:
    return kpt_shape[0] * kpt_shape[1] if kpt_shape else 0


def _dim(d: Any) -> int | None:
    """A shape entry as a positive int, or None for a dynamic one (a name, None, -1)."""
    return int(d) if isinstance(d, int | np.integer) and d > 0 else None
