"""`model:` section: which network runs and how its output is filtered."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from streamseg.config.base import Section, base_dir
from streamseg.errors import ModelError

Provider = Literal["tensorrt", "cuda", "cpu"]


class ModelConfig(Section):
    path: str = Field(
        description="Model file (.onnx, .engine/.plan; relative to the config file) or a model ID such as "
        "yolov8n-seg-640, looked up in $STREAMSEG_MODELS and ~/.cache/streamseg/models.",
    )
    conf: float = Field(0.25, ge=0.0, le=1.0, description="Minimum class score to keep a detection.")
    iou: float = Field(0.7, ge=0.0, le=1.0, description="NMS IoU threshold.")
    max_det: int = Field(300, ge=1, le=10000, description="Most detections kept per frame after NMS.")
    agnostic_nms: bool = Field(False, description="NMS across classes instead of per class.")
    classes: list[str | int] | None = Field(
        None, description="Keep only these classes (labels or ids); null keeps all."
    )
    backend: Literal["auto", "onnxruntime", "tensorrt"] = Field(
        "auto", description="auto: native TensorRT for .engine/.plan files, onnxruntime for .onnx."
    )
    providers: list[Provider] | None = Field(
        None,
        description="onnxruntime execution providers in order of preference; an unavailable one is skipped "
        "with a warning. null: the best available (tensorrt, cuda, cpu).",
    )
    threads: int | None = Field(
        None, ge=1, le=256, description="onnxruntime intra-op threads; null lets onnxruntime decide."
    )

    @field_validator("path")
    @classmethod
    def _exists(cls, path: str, info: ValidationInfo) -> str:
        """`validate` reports a model file that does not exist (it never loads the model itself)."""
        if (info.context or {}).get("check_models"):
            from streamseg.models.registry import resolve_model

            try:
                resolve_model(path, base_dir(info))
            except ModelError as exc:
                raise ValueError(str(exc)) from None
        return path
