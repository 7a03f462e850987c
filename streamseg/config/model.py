"""`model:` section: which network runs and how its output is filtered."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from streamseg.config.base import Section, base_dir
from streamseg.errors import ModelError
from streamseg.vocab import Backend, Provider


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
    backend: Backend = Field(
        Backend.AUTO, description="auto: native TensorRT for .engine/.plan files, onnxruntime for .onnx."
    )
    providers: list[Provider] | None = Field(
        None,
        description="onnxruntime execution providers in order of preference; an unavailable one is skipped "
        "with a warning. null: the best available (tensorrt, cuda, cpu).",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="onnxruntime intra-op threads per worker; null: the cores divided among the workers (and a "
        "frame that comes alone, nothing else running, runs on every core).",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="auto (the best the backend and providers offer), cpu, cuda or cuda:N (GPU N).",
    )
    batch_size: int = Field(
        1,
        ge=1,
        le=64,
        description="Frames per engine call, gathered across the cameras that share the model (needs a model "
        "exported with a dynamic batch axis; a fixed-batch model runs its own batch).",
    )
    batch_timeout_ms: float = Field(
        10.0, ge=0.0, le=1000.0, description="Longest wait for a batch to fill before it runs as it is."
    )
    workers: int | Literal["auto"] = Field(
        "auto",
        description="Engine calls in flight at once (CPU: that many onnxruntime sessions sharing the cores; GPU: "
        "execution contexts / CUDA streams). auto: from the cores and the number of cameras sharing the model "
        "(one camera on 2 cores: 2); on a GPU 2.",
    )

    @field_validator("workers")
    @classmethod
    def _workers(cls, workers: int | str) -> int | str:
        if workers != "auto" and not 1 <= int(workers) <= 64:
            raise ValueError("must be auto or a number from 1 to 64")
        return workers

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
