"""The engine interface: one forward pass of an exported model, whatever runs it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """What the decoder needs to know about a model, read from the exported file's metadata."""

    path: Path
    task: str  # a vocab.Task: detect | segment | pose | multitask (the Ultralytics metadata, else the outputs)
    names: dict[int, str]  # class id -> label
    imgsz: tuple[int, int]  # network input (height, width)
    stride: int = 32
    batch: int = 1  # fixed batch size of the graph; -1 when dynamic
    input_name: str = "images"
    input_dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    output_names: tuple[str, ...] = ()
    output_shapes: tuple[tuple[int | str | None, ...], ...] = ()
    kpt_shape: tuple[int, int] | None = None  # (keypoints, 2 or 3 values each: x, y[, visibility]); pose heads


class Engine(ABC):
    """Runs a forward pass. Implementations: onnxruntime (CPU, CUDA, TensorRT EP), native TensorRT, TorchScript and
    a Triton Inference Server client."""

    info: ModelInfo
    name: str  # e.g. "onnxruntime[CPUExecutionProvider]" or "tensorrt", for logs and bench output
    device: str = "cpu"  # where it runs: "cpu" or "cuda:N"
    capacity: int | None = None  # most engine objects of this model that can run at once; None: no limit

    @abstractmethod
    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        """images: NCHW, float32 RGB in 0..1, letterboxed to info.imgsz. Returns the raw outputs in graph order.

        One call at a time per engine object: an inference stage gives each of its workers its own engine.
        The returned arrays belong to the caller (the next call never overwrites them).
        """

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A host buffer this engine copies from fast: plain memory here, page-locked memory on CUDA engines.

        Frames (ring slots) and input tensors are allocated through the engine that will read them.
        """
        return np.empty(shape, dtype)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release device memory and sessions."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gpu_index(device: str) -> int:
    """cuda:N -> N; auto and cuda -> 0."""
    return int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
