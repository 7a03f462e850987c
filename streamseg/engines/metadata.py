"""Parse the Ultralytics export metadata (ONNX metadata_props, or the JSON header of a TensorRT engine)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any


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
