"""Engines run one forward pass; `create_engine` picks the backend from the file type."""

from __future__ import annotations

from pathlib import Path

from streamseg.engines.base import Engine, ModelInfo
from streamseg.errors import ModelError
from streamseg.vocab import Backend

TENSORRT_SUFFIXES = (".engine", ".plan")
BACKENDS = tuple(Backend)

__all__ = ["Engine", "ModelInfo", "create_engine", "read_model_info"]


def create_engine(
    path: Path,
    *,
    backend: str = "auto",
    providers: list[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    spin: bool = True,
) -> Engine:
    """Open a model file. backend "auto": native TensorRT for .engine/.plan, onnxruntime for .onnx.

    providers (onnxruntime only): ordered short names from "tensorrt", "cuda", "cpu"; None = the best
    available. device: auto, cpu, cuda or cuda:N. threads: onnxruntime intra-op threads (None = onnxruntime's
    default); spin: whether idle onnxruntime threads busy-wait (off for sessions that share cores).
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} for {path}: choose from {', '.join(BACKENDS)}")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if backend == "auto":
        backend = "tensorrt" if path.suffix.lower() in TENSORRT_SUFFIXES else "onnxruntime"
    if backend == "tensorrt":
        from streamseg.engines.tensorrt_engine import TensorRTEngine

        if device == "cpu":
            raise ModelError(f"{path}: TensorRT engines run on a GPU, not on device: cpu")
        return TensorRTEngine(path, device=gpu_index(device))
    from streamseg.engines.onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(path, providers=providers, device=device, threads=threads, spin=spin)


def gpu_index(device: str) -> int:
    """cuda:N -> N; auto and cuda -> 0."""
    return int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0


def read_model_info(path: Path) -> ModelInfo:
    """The model's metadata (task, names, imgsz, I/O). Opens a CPU session for ONNX files.

    TensorRT engines need a GPU to report their I/O, so only the embedded Ultralytics header is read.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix.lower() in TENSORRT_SUFFIXES:
        from streamseg.engines.tensorrt_engine import info_from_metadata, split_engine_file

        meta, _ = split_engine_file(path.read_bytes())
        return info_from_metadata(path, meta)
    with create_engine(path, providers=["cpu"], threads=1) as engine:
        return engine.info
