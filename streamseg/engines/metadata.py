"""Parse the Ultralytics export metadata (ONNX metadata_props, or the JSON header of a TensorRT engine)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.engines.base import ModelInfo


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
    task = str(meta.get("task") or ("segment" if len(outputs) == 2 else "detect"))
    num_classes = None
    if outputs and len(outputs[0]) == 3 and outputs[0][1]:
        # 4 box values, then the classes, then 32 mask coefficients for segment heads
        num_classes = max(outputs[0][1] - 4 - (32 if task == "segment" else 0), 0)
    # The graph decides: a fixed first axis is the batch, a named/negative one is dynamic (-1). Without the
    # graph's shapes (a TensorRT file read on a machine without a GPU) the metadata is all there is.
    batch = (shape[0] or -1) if shape else parse_int(meta.get("batch"), 1)
    return ModelInfo(
        path=Path(path),
        task=task,
        names=parse_names(meta.get("names"), num_classes),
        imgsz=imgsz,
        stride=parse_int(meta.get("stride"), 32),
        batch=batch,
        input_name=input_name,
        input_dtype=np.dtype(input_dtype),
        output_names=tuple(output_names),
        output_shapes=outputs,
    )


def _dim(d: Any) -> int | None:
    """A shape entry as a positive int, or None for a dynamic one (a name, None, -1)."""
    return int(d) if isinstance(d, int | np.integer) and d > 0 else None
