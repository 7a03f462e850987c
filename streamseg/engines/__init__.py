"""Engines run one forward pass; `create_engine` picks the backend, from the file type when asked to.

BACKEND_TABLE is the one place that maps a backend to its module and to the files `backend: auto` opens with it.
Each module exposes `open_engine(path, options) -> Engine` and `read_info(path) -> ModelInfo`, and imports its
runtime (onnxruntime, tensorrt, torch, tritonclient) itself, so only the backend in use must be installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from streamseg.config.model import TensorRTConfig, TritonConfig
from streamseg.engines.base import Engine, ModelInfo, gpu_index
from streamseg.errors import ModelError
from streamseg.vocab import Backend

__all__ = [
    "BACKEND_TABLE",
    "Engine",
    "EngineOptions",
    "ModelInfo",
    "backend_for",
    "create_engine",
    "gpu_index",
    "read_model_info",
]


@dataclass(frozen=True)
class BackendSpec:
    module: str  # implements open_engine(path, options) and read_info(path)
    suffixes: tuple[str, ...]  # model files `backend: auto` opens with this backend
    needs_file: bool = True  # False: the model lives elsewhere (a Triton server)


BACKEND_TABLE: dict[Backend, BackendSpec] = {
    Backend.ONNXRUNTIME: BackendSpec("streamseg.engines.onnxruntime_engine", (".onnx",)),
    Backend.TENSORRT: BackendSpec("streamseg.engines.tensorrt_engine", (".engine", ".plan")),
    Backend.TORCHSCRIPT: BackendSpec("streamseg.engines.torchscript_engine", (".torchscript",)),
    Backend.TRITON: BackendSpec("streamseg.engines.triton_engine", (), needs_file=False),
}
TENSORRT_SUFFIXES = BACKEND_TABLE[Backend.TENSORRT].suffixes


@dataclass(frozen=True)
class EngineOptions:
    """The runtime settings; each backend reads the ones it has."""

    providers: tuple[str, ...] | None = None  # onnxruntime execution providers, short names, in order
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: int | None = None  # CPU threads of one engine (onnxruntime intra-op, torch)
    spin: bool = True  # onnxruntime: idle threads busy-wait (off for sessions sharing cores)
    max_batch: int = 1  # largest batch an engine built here must take (TensorRT optimization profile)
    contexts: int = 1  # engine objects of this model that will run at once (TensorRT: profiles for dynamic batch)
    tensorrt: TensorRTConfig = field(default_factory=TensorRTConfig)
    triton: TritonConfig = field(default_factory=TritonConfig)


def backend_for(path: Path, backend: str = "auto") -> Backend:
    """The backend that opens `path`: the one asked for, else the one whose suffix the file has (onnxruntime for
    any other file: ONNX files come with any name)."""
    if backend not in tuple(Backend):
        raise ModelError(f"unknown backend {backend!r} for {path}: choose from {', '.join(Backend)}")
    if backend != Backend.AUTO:
        return Backend(backend)
    suffix = Path(path).suffix.lower()
    return next((name for name, spec in BACKEND_TABLE.items() if suffix in spec.suffixes), Backend.ONNXRUNTIME)


def create_engine(
    path: Path,
    *,
    backend: str = "auto",
    providers: list[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    spin: bool = True,
    max_batch: int = 1,
    contexts: int = 1,
    tensorrt: TensorRTConfig | None = None,
    triton: TritonConfig | None = None,
) -> Engine:
    """Open a model with `backend` (auto: from the file's suffix, see BACKEND_TABLE).

    providers (onnxruntime only): ordered short names from "tensorrt", "cuda", "cpu"; None = the best
    available. device: auto, cpu, cuda or cuda:N. threads: CPU threads of this engine (None = the runtime's
    default); spin: whether idle onnxruntime threads busy-wait (off for sessions that share cores).
    max_batch, contexts: what a TensorRT engine built from an .onnx file must allow (largest batch, workers).
    """
    path = Path(path)
    name = backend_for(path, backend)
    spec = BACKEND_TABLE[name]
    if spec.needs_file and not path.is_file():
        raise ModelError(f"model file not found: {path}")
    options = EngineOptions(
        providers=tuple(providers) if providers else None,
        device=device,
        threads=threads,
        spin=spin,
        max_batch=max_batch,
        contexts=contexts,
        tensorrt=tensorrt or TensorRTConfig(),
        triton=triton or TritonConfig(),
    )
    return importlib.import_module(spec.module).open_engine(path, options)


def read_model_info(path: Path) -> ModelInfo:
    """The model's metadata (task, names, imgsz, I/O) without running it: onnxruntime opens ONNX files on the CPU;
    TensorRT and TorchScript files give their embedded Ultralytics metadata (no GPU, no torch needed)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    return importlib.import_module(BACKEND_TABLE[backend_for(path)].module).read_info(path)
