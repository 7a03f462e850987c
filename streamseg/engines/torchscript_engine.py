"""TorchScript engine: Ultralytics `.torchscript` exports, on the CPU or a CUDA GPU.

Ultralytics stores the model's metadata (names, imgsz, stride, task, batch) as JSON in the archive's
`extra/config.txt`; it is read with zipfile, so `read_info` needs no torch. torch itself is an optional extra
(`pip install 'streamseg[torch]'`) imported when an engine is opened.

On CUDA each worker's engine has its own `torch.cuda.Stream`: the input is copied from page-locked host memory
with `non_blocking=True`, the network runs and the outputs are copied into page-locked host tensors, all queued
on that stream, and a CUDA event recorded behind them says when the batch is done. Two workers on two streams
overlap one batch's copies with the other's compute.
"""

from __future__ import annotations

import json
import logging
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.engines.base import Engine, ModelInfo, gpu_index
from streamseg.engines.metadata import build_model_info, parse_imgsz, parse_int
from streamseg.errors import ModelError

if TYPE_CHECKING:
    from streamseg.engines import EngineOptions

log = logging.getLogger(__name__)

CONFIG_MEMBER = "extra/config.txt"  # inside the archive's top folder: <name>/extra/config.txt
# TorchScript's profiling executor profiles a graph's first run for an input shape and optimizes it on the next, so
# a batch size met for the first time runs slowly; on a GPU the engine runs each batch size it will be given this
# often when it opens (on a CPU, its one size).
WARMUP_RUNS = 3


def read_metadata(path: Path) -> dict[str, Any]:
    """The Ultralytics metadata of a .torchscript file ({} when it has none), without torch."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith(CONFIG_MEMBER)), None)
            if member is None:
                return {}
            meta = json.loads(archive.read(member).decode("utf-8") or "{}")
    except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ModelError(f"cannot read TorchScript model {path}: not a TorchScript archive ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def read_info(path: Path) -> ModelInfo:
    meta = read_metadata(path)
    return build_model_info(path, meta, input_shape=_input_shape(meta))


def open_engine(path: Path, options: EngineOptions) -> Engine:
    return TorchScriptEngine(path, device=options.device, threads=options.threads, max_batch=options.max_batch)


def _input_shape(meta: dict[str, Any]) -> tuple[int, ...]:
    """(batch, 3, H, W) from the metadata; batch 0 (dynamic) when it was exported with a dynamic batch axis."""
    h, w = parse_imgsz(meta.get("imgsz")) or (640, 640)
    dynamic = bool((meta.get("args") or {}).get("dynamic")) if isinstance(meta.get("args"), dict) else False
    return (0 if dynamic else parse_int(meta.get("batch"), 1), 3, h, w)


def _import_torch(path: Path) -> Any:
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"TorchScript model {path} needs torch: pip install 'streamseg[torch]' (or the torch build for your "
            "platform, e.g. NVIDIA's wheel on a Jetson)"
        ) from None
    return torch


def _flatten(value: Any) -> list[Any]:
    """The module's outputs in order (Ultralytics segment exports return [pred, protos], possibly nested)."""
    if isinstance(value, list | tuple):
        return [t for item in value for t in _flatten(item)]
    return [value]


class TorchScriptEngine(Engine):
    """One worker's TorchScript module (on CUDA with its own stream, pinned buffers and completion event)."""

    def __init__(self, path: Path, *, device: str = "auto", threads: int | None = None, max_batch: int = 1) -> None:
        """max_batch: the largest batch the stage will send (a model with a dynamic batch axis is warmed up on
        every size from 1 to it)."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        torch = _import_torch(path)
        self._torch = torch
        cuda = torch.cuda.is_available()
        if device.startswith("cuda") and not cuda:
            raise ModelError(f"{path}: device {device} asked for, but torch {torch.__version__} sees no CUDA GPU")
        self.device = "cpu" if device == "cpu" or not cuda else f"cuda:{gpu_index(device)}"
        self._dev = torch.device(self.device)
        self.name = f"torchscript[{self.device}]"
        self.threads = threads
        extra = {"config.txt": ""}
        try:
            with warnings.catch_warnings():  # torch 2.9+ deprecates jit.load; Ultralytics still exports TorchScript
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
                self._module = torch.jit.load(str(path), _extra_files=extra, map_location=self._dev).eval()
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load TorchScript model {path}: {first}") from None
        meta = json.loads(extra["config.txt"] or "{}") if extra["config.txt"] else read_metadata(path)
        half = bool((meta.get("args") or {}).get("half")) if isinstance(meta.get("args"), dict) else False
        self._dtype = np.dtype(np.float16 if half else np.float32)
        self._stream = self._done = None
        self._hosts: dict[tuple[int, ...], Any] = {}  # output shape -> pinned host tensor (CUDA)
        if self.device != "cpu":
            self._stream = torch.cuda.Stream(device=self._dev)
            self._done = torch.cuda.Event(blocking=True)  # a waiting worker sleeps instead of spinning a core
        shape = _input_shape(meta)
        # TorchScript files declare no output shapes: a call on zeros finds them. The calls also warm up the JIT
        # (and cuDNN's choice of kernels) for each batch size, so the cameras' first frames are not the slow ones:
        # on a GPU a new batch size took seconds; on a CPU the first calls cost little, and one size is enough.
        sizes = range(1, max(max_batch, 1) + 1) if shape[0] == 0 and self.device != "cpu" else [max(shape[0], 1)]
        for batch in sizes:
            zeros = np.zeros((batch, *shape[1:]), np.float32)
            for _ in range(WARMUP_RUNS):
                outputs = self.infer(zeros)
        self.info = build_model_info(
            path,
            meta,
            input_name="images",
            input_shape=shape,
            input_dtype=self._dtype,
            output_names=[f"output{i}" for i in range(len(outputs))],
            output_shapes=[(shape[0] or None, *o.shape[1:]) for o in outputs],
        )

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """Page-locked host memory on CUDA (the tensor stays alive as the array's base), plain memory on the CPU."""
        if self.device == "cpu":
            return np.empty(shape, dtype)
        torch = self._torch
        return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, pin_memory=True).numpy()

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        if images.dtype != self._dtype:
            images = images.astype(self._dtype)
        with torch.inference_mode():
            if self._stream is None:
                if self.threads:
                    torch.set_num_threads(self.threads)  # this thread's intra-op threads (a share of the cores)
                return [t.numpy() for t in _flatten(self._module(torch.from_numpy(images)))]
            with torch.cuda.stream(self._stream):
                x = torch.from_numpy(images).to(self._dev, non_blocking=True)
                outputs = _flatten(self._module(x))
                hosts = [self._host(tuple(o.shape), o.dtype) for o in outputs]
                for host, out in zip(hosts, outputs, strict=True):
                    host.copy_(out, non_blocking=True)
                self._done.record(self._stream)
            self._done.synchronize()
        # Copies out of the pinned tensors: the next call overwrites them while the decoder may still run.
        return [h.numpy().copy() for h in hosts]

    def _host(self, shape: tuple[int, ...], dtype: Any) -> Any:
        host = self._hosts.get(shape)
        if host is None or host.dtype != dtype:
            host = self._hosts[shape] = self._torch.empty(shape, dtype=dtype, pin_memory=True)
        return host

    def close(self) -> None:
        self._module = None
        self._hosts.clear()
