"""`model:` section: which network runs and how its output is filtered."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from streamseg.config.base import Section, base_dir, resolve_path
from streamseg.errors import ModelError
from streamseg.vocab import Backend, Precision, Provider

TRITON_URL = re.compile(r"^(grpc://)?[^/\s:]+:\d{1,5}$")


class TensorRTConfig(Section):
    """How TensorRT engines are built from an .onnx file: by the native TensorRT backend and by onnxruntime's
    TensorRT execution provider alike."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)  # frozen: part of a stage key

    precision: Precision = Field(
        Precision.FP16,
        description="fp16 (where the GPU has fast fp16, else fp32), fp32, or int8 (needs `calib`).",
    )
    calib: str | None = Field(
        None,
        description="int8 calibration frames: a video file or a folder of images (relative to the config file).",
    )
    cache_dir: str | None = Field(
        None,
        description="Where built engines are kept (relative to the config file); null: $STREAMSEG_CACHE, else "
        "~/.cache/streamseg/engines. A cached engine is rebuilt when the ONNX file, the precision, the batch "
        "profile, the TensorRT version or the GPU changes.",
    )

    @field_validator("calib", "cache_dir")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        if info.field_name == "calib" and not path.exists():
            raise ValueError(f"file or folder not found: {path}")
        return str(path)


class TritonConfig(Section):
    """A Triton Inference Server that runs the model for this daemon (and others): `backend: triton`."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    url: str = Field(
        "grpc://127.0.0.1:8001", description="The server's gRPC endpoint: grpc://HOST:PORT (or HOST:PORT)."
    )
    model_name: str | None = Field(
        None, min_length=1, description="The model's name on the server; null: the model path's stem."
    )
    model_version: str = Field("", description="The model version to run; empty: the server's choice.")
    timeout: float = Field(10.0, gt=0, le=600, description="Seconds one request may take before it counts as failed.")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not TRITON_URL.match(url.strip()):
            raise ValueError(f"expected grpc://HOST:PORT, got {url!r}")
        return url.strip()


class ModelConfig(Section):
    backend: Backend = Field(
        Backend.AUTO,
        description="auto: native TensorRT for .engine/.plan files, TorchScript for .torchscript, onnxruntime for "
        ".onnx. tensorrt on an .onnx file builds (once, then cached) a TensorRT engine from it. triton: a Triton "
        "Inference Server runs the model (see `triton`).",
    )
    mirror: str | None = Field(
        None,
        description="Where model IDs missing on disk are downloaded from: an http(s):// or file:// folder serving "
        "<ID>.onnx (and optionally SHA256SUMS, as sha256sum writes it). null: $STREAMSEG_MODEL_URL; neither: no "
        "download. Downloads go to the model cache, with a progress bar, checked against `sha256` or SHA256SUMS.",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The sha256 a downloaded model ID's file must have (it is refused otherwise); null: the "
        "mirror's SHA256SUMS entry, if any.",
    )
    path: str = Field(
        description="Model file (.onnx, .engine/.plan, .torchscript; relative to the config file) or a model ID "
        "such as yolov8n-seg-640, looked up in $STREAMSEG_MODELS, then the model cache ($STREAMSEG_CACHE/models, "
        "else ~/.cache/streamseg/models), then downloaded from the mirror (`mirror`). With backend triton the "
        "file is optional: class names and input size come from the server when it has them.",
    )
    conf: float = Field(0.25, ge=0.0, le=1.0, description="Minimum class score to keep a detection.")
    iou: float = Field(0.7, ge=0.0, le=1.0, description="NMS IoU threshold.")
    max_det: int = Field(300, ge=1, le=10000, description="Most detections kept per frame after NMS.")
    agnostic_nms: bool = Field(False, description="NMS across classes instead of per class.")
    classes: list[str | int] | None = Field(
        None, description="Keep only these classes (labels or ids); null keeps all."
    )
    providers: list[Provider] | None = Field(
        None,
        description="onnxruntime execution providers in order of preference; an unavailable one is skipped "
        "with a warning. null: the best available (tensorrt, cuda, cpu). The TensorRT provider builds its "
        "engines as `tensorrt` says (precision, cache).",
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
        "(one camera on 2 cores: 2); on a GPU 2; through Triton 4.",
    )
    tensorrt: TensorRTConfig = Field(
        default_factory=TensorRTConfig,
        description="Building TensorRT engines from an .onnx file (backend tensorrt, or onnxruntime's TensorRT "
        "provider).",
    )
    triton: TritonConfig = Field(
        default_factory=TritonConfig, description="The Triton Inference Server, for backend: triton."
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
        """`validate` reports a model file that does not exist (it never loads the model itself, nor downloads
        one: an ID the mirror can provide passes); a Triton server needs no local file."""
        if (info.context or {}).get("check_models") and info.data.get("backend") != Backend.TRITON:
            from streamseg.models.registry import resolve_model

            try:
                resolve_model(path, base_dir(info), mirror=info.data.get("mirror"), download=False)
            except ModelError as exc:
                raise ValueError(str(exc)) from None
        return path
