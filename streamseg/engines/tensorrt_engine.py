"""Native TensorRT 10 engine (name-based I/O, execute_async_v3) with pycuda buffers, streams and events.

One deserialized engine per (file, GPU) is shared by every worker of an inference stage; each worker's
TensorRTEngine owns an execution context, a CUDA stream, device buffers, page-locked host buffers and an event.
A call copies its input in, runs and copies its outputs out, all queued on the worker's own stream, then waits
on the event recorded behind them. With two workers (the GPU default) one worker's copies overlap the other's
compute, so the copy of batch N+1 runs while batch N computes. When the batch axis is dynamic, TensorRT lets
one optimization profile serve one execution context at a time, so each worker takes a profile of its own.

tensorrt and pycuda are imported when an engine is opened, so this module imports without them.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.engines.base import Engine, ModelInfo, gpu_index
from streamseg.engines.metadata import build_model_info
from streamseg.errors import ModelError

if TYPE_CHECKING:
    from streamseg.engines import EngineOptions

log = logging.getLogger(__name__)

_MAX_META_BYTES = 1 << 20  # an Ultralytics header is a few KB; anything bigger is engine data


def split_engine_file(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split an Ultralytics `.engine` file into (metadata, serialized engine).

    Ultralytics writes a 4-byte little-endian length, that many bytes of UTF-8 JSON, then the engine.
    Engines built by trtexec have no header: then the metadata is {} and the bytes are returned as-is.
    """
    if len(data) >= 4:
        (length,) = struct.unpack("<I", data[:4])
        if 0 < length <= min(_MAX_META_BYTES, len(data) - 4):
            try:
                meta = json.loads(data[4 : 4 + length].decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                meta = None
            if isinstance(meta, dict):
                return meta, data[4 + length :]
    return {}, data


def info_from_metadata(path: Path, meta: dict[str, Any], **io: Any) -> ModelInfo:
    """ModelInfo from the JSON header, with I/O details (names, shapes, dtype) from the engine when known."""
    return build_model_info(path, meta, **io)


def read_info(path: Path) -> ModelInfo:
    """TensorRT engines need a GPU to report their I/O, so only the embedded Ultralytics header is read."""
    meta, _ = split_engine_file(Path(path).read_bytes())
    return info_from_metadata(path, meta)


def open_engine(path: Path, options: EngineOptions) -> Engine:
    """A worker's engine: a serialized engine as it is, or one built from (and cached for) an .onnx file."""
    if options.device == "cpu":
        raise ModelError(f"{path}: TensorRT engines run on a GPU, not on device: cpu")
    device = gpu_index(options.device)
    if path.suffix.lower() != ".onnx":
        return TensorRTEngine(path, device=device)
    from streamseg.engines.tensorrt_build import ensure_engine

    trt_cfg = options.tensorrt
    build = {
        "precision": trt_cfg.precision,
        "max_batch": options.max_batch,
        "calib": Path(trt_cfg.calib) if trt_cfg.calib else None,
        "cache_dir": Path(trt_cfg.cache_dir) if trt_cfg.cache_dir else None,
        "device": device,
        "profiles": options.contexts,
    }
    engine_path = ensure_engine(path, **build)
    try:
        return TensorRTEngine(engine_path, device=device)
    except EngineFileError as exc:  # our own cache file, refused after all (a driver update?): build it again
        log.warning("%s: rebuilding", exc)
        return TensorRTEngine(ensure_engine(path, **build, rebuild=True), device=device)


class EngineFileError(ModelError):
    """TensorRT refused the file: damaged, or built by another TensorRT version or for another GPU."""


def _import_backend(path: Path) -> tuple[Any, Any]:
    from streamseg.engines.tensorrt_build import import_tensorrt

    return import_tensorrt(f"TensorRT engine {path}")


def _is_page_locked(cuda: Any, array: np.ndarray) -> bool:
    """Whether `array` lies in memory from pycuda's pagelocked_empty (its base chain ends in the allocation)."""
    base: Any = array
    while base is not None:
        if isinstance(base, cuda.PagelockedHostAllocation):
            return True
        base = getattr(base, "base", None)
    return False


class _SharedEngine:
    """One deserialized engine on one GPU, shared by the execution contexts of every worker using the file."""

    _registry: dict[tuple[str, int, int], _SharedEngine] = {}
    _lock = threading.Lock()

    @classmethod
    def acquire(cls, trt: Any, cuda: Any, path: Path, device: int) -> tuple[_SharedEngine, int]:
        """The shared engine for `path` on `device` (deserialized on first use) and a profile for one context."""
        key = (str(path.resolve()), path.stat().st_mtime_ns, device)
        with cls._lock:
            shared = cls._registry.get(key)
            if shared is None:
                shared = cls(trt, cuda, path, device)
                shared.key = key
                cls._registry[key] = shared
            profile = shared._take_profile()
            shared.users += 1
            return shared, profile

    def __init__(self, trt: Any, cuda: Any, path: Path, device: int) -> None:
        self.trt, self.cuda, self.path = trt, cuda, path
        self.users = 0
        self.key: tuple[str, int, int] | None = None
        self.meta, blob = split_engine_file(path.read_bytes())
        cuda.init()
        self.gpu = _compute_capability(cuda, device)
        _refuse_foreign(trt, path, self.meta, blob, self.gpu)
        self.ctx = cuda.Device(device).retain_primary_context()
        self.ctx.push()
        try:
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            if self.meta.get("dla") is not None:  # Jetson exports may target a DLA core
                self.runtime.DLA_core = int(self.meta["dla"])
            self.engine = self.runtime.deserialize_cuda_engine(blob)
        finally:
            self.ctx.pop()
        if self.engine is None:
            self._dispose()
            raise EngineFileError(
                f"cannot load TensorRT engine {path}: TensorRT {trt.__version__} refused it on this GPU ({self.gpu}); "
                "it was built by another TensorRT version, for another GPU, or is damaged: rebuild it from its "
                "ONNX file (streamseg export --format engine)"
            )
        self.inputs = [n for n in self._names() if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self._names() if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 1:
            self._dispose()
            raise ModelError(f"TensorRT engine {path} has {len(self.inputs)} inputs, expected 1 (images)")
        self.dynamic = any(d < 0 for d in self.engine.get_tensor_shape(self.inputs[0]))
        profiles = self.engine.num_optimization_profiles
        self._free = list(range(profiles)) if self.dynamic else None

    def _names(self) -> list[str]:
        return [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

    @property
    def capacity(self) -> int | None:
        """How many execution contexts can run at once: one per profile when shapes are dynamic."""
        return self.engine.num_optimization_profiles if self.dynamic else None

    def _take_profile(self) -> int:
        if self._free is None:
            return 0
        if not self._free:
            raise ModelError(
                f"TensorRT engine {self.path} has {self.engine.num_optimization_profiles} optimization profile(s) "
                "for its dynamic batch and all are in use: run fewer workers, or build it with one profile per worker"
            )
        return self._free.pop(0)

    def release(self, profile: int | None) -> None:
        """A context is gone: its profile is free again; the last one frees the engine."""
        with self._lock:
            if profile is not None and self._free is not None:
                self._free.append(profile)
                self._free.sort()
            self.users -= 1
            if self.users > 0:
                return
            if self.key is not None and self._registry.get(self.key) is self:
                del self._registry[self.key]
        self._dispose()

    def _dispose(self) -> None:
        self.ctx.push()
        try:
            self.engine = self.runtime = None
        finally:
            self.ctx.pop()
            self.ctx.detach()


def _compute_capability(cuda: Any, device: int) -> str:
    major, minor = cuda.Device(device).compute_capability()
    return f"sm{major}{minor}"


def _refuse_foreign(trt: Any, path: Path, meta: dict[str, Any], blob: bytes, gpu: str) -> None:
    """An engine whose streamseg metadata says it cannot work here is refused with one line, before TensorRT
    reads it (a foreign engine may crash the process instead of failing)."""
    import hashlib

    ours = meta.get("streamseg")
    if not isinstance(ours, dict):
        return  # an Ultralytics or trtexec engine: TensorRT itself decides
    parts = str(ours.get("key", "")).split("/")
    hint = "rebuild it from its ONNX file (streamseg export --format engine)"
    if len(parts) == 5:
        built_trt, built_gpu = parts[3].removeprefix("trt"), parts[4]
        if built_trt != str(trt.__version__):
            raise EngineFileError(
                f"TensorRT engine {path} was built with TensorRT {built_trt}, "
                f"this is TensorRT {trt.__version__}: {hint}"
            )
        if built_gpu != gpu:
            raise EngineFileError(f"TensorRT engine {path} was built for a {built_gpu} GPU, this one is {gpu}: {hint}")
    if ours.get("engine_sha256") and hashlib.sha256(blob).hexdigest() != ours["engine_sha256"]:
        raise EngineFileError(f"TensorRT engine {path} is damaged (checksum mismatch): {hint}")


class _Buffer:
    """One I/O tensor: device memory and a page-locked host twin, both sized for the profile's largest shape."""

    def __init__(self, cuda: Any, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.name = name
        self.shape = shape
        self.dtype = dtype
        size = int(np.prod(shape))
        self.host = cuda.pagelocked_empty(size, dtype)
        self.device = cuda.mem_alloc(self.host.nbytes)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.host[: int(np.prod(shape))].reshape(shape)


class TensorRTEngine(Engine):
    """One worker's execution context on a shared engine, with its own stream, buffers and completion event.

    The CUDA primary context is pushed around every call, so the engine can be used from any thread (one call
    at a time: the stage gives each worker its own TensorRTEngine).
    """

    def __init__(self, path: Path, *, device: int = 0) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        trt, cuda = _import_backend(path)
        self._trt, self._cuda = trt, cuda
        self._shared, self._profile = _SharedEngine.acquire(trt, cuda, path, device)
        self._ctx = self._shared.ctx
        self._ctx.push()
        try:
            self._open(path)
        except BaseException:
            self._ctx.pop()
            self._shared.release(self._profile)
            self._ctx = None
            raise
        self._ctx.pop()
        self.name = "tensorrt"
        self.device = f"cuda:{device}"
        self.capacity = self._shared.capacity

    def _open(self, path: Path) -> None:
        trt, cuda, shared = self._trt, self._cuda, self._shared
        engine = shared.engine
        self._context = engine.create_execution_context()
        self._stream = cuda.Stream()
        # BLOCKING_SYNC: a waiting worker sleeps instead of spinning a core (a Jetson has few to spare).
        self._done = cuda.Event(cuda.event_flags.BLOCKING_SYNC | cuda.event_flags.DISABLE_TIMING)
        if shared.dynamic and not self._context.set_optimization_profile_async(self._profile, self._stream.handle):
            raise ModelError(f"TensorRT engine {path}: cannot select optimization profile {self._profile}")
        name = shared.inputs[0]
        shape = tuple(engine.get_tensor_shape(name))
        if shared.dynamic:  # allocate for this profile's largest shape
            shape = tuple(engine.get_tensor_profile_shape(name, self._profile)[2])
        if not self._context.set_input_shape(name, shape):
            raise ModelError(f"TensorRT engine {path}: input shape {shape} refused by profile {self._profile}")
        self._input = _Buffer(cuda, name, shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
        self._outputs = [
            _Buffer(cuda, n, tuple(self._context.get_tensor_shape(n)), np.dtype(trt.nptype(engine.get_tensor_dtype(n))))
            for n in shared.outputs
        ]
        for b in (self._input, *self._outputs):
            self._context.set_tensor_address(b.name, int(b.device))
        self._input_shape = shape
        self.info = info_from_metadata(
            path,
            shared.meta,
            input_name=name,
            input_shape=(-1, *shape[1:]) if shared.dynamic else shape,
            input_dtype=self._input.dtype,
            output_names=[b.name for b in self._outputs],
            # a dynamic batch axis is None, like the ONNX file's: the decoder checks shapes without it
            output_shapes=[(None, *b.shape[1:]) if shared.dynamic else b.shape for b in self._outputs],
        )

    def _set_input_shape(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        inp = self._input
        if len(shape) != len(inp.shape) or any(s > m for s, m in zip(shape, inp.shape, strict=True)):
            raise ValueError(f"input shape {shape} does not fit the engine's input {inp.shape}")
        if shape != self._input_shape:
            if not self._context.set_input_shape(inp.name, shape):
                raise ValueError(f"input shape {shape} is outside the engine's optimization profile")
            self._input_shape = shape
        return [tuple(self._context.get_tensor_shape(b.name)) for b in self._outputs]

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """Page-locked host memory, so copies to the device can be asynchronous (frames, input tensors).

        Any thread may allocate: the primary context is made current around the call, and PORTABLE makes
        the pages pinned for every context in the process.
        """
        cuda = self._cuda
        self._ctx.push()
        try:
            return cuda.pagelocked_empty(shape, dtype, mem_flags=cuda.host_alloc_flags.PORTABLE)
        finally:
            self._ctx.pop()

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        cuda = self._cuda
        inp = self._input
        out_shapes = self._set_input_shape(tuple(images.shape))
        # An input already in page-locked memory (stage buffers and camera tensors come from allocate()) is copied
        # to the device as it is; anything else, or another dtype, goes through this worker's pinned buffer first.
        direct = images.dtype == inp.dtype and images.flags.c_contiguous and _is_page_locked(cuda, images)
        source = images if direct else inp.view(images.shape)
        if not direct:
            np.copyto(source, images, casting="same_kind")  # casts float32 -> float16 if the engine takes fp16
        outputs = [b.view(shape) for b, shape in zip(self._outputs, out_shapes, strict=True)]
        self._ctx.push()
        try:
            cuda.memcpy_htod_async(inp.device, source, self._stream)
            if not self._context.execute_async_v3(self._stream.handle):
                raise RuntimeError(f"TensorRT execution failed for {self.info.path}")
            for b, host in zip(self._outputs, outputs, strict=True):
                cuda.memcpy_dtoh_async(host, b.device, self._stream)
            self._done.record(self._stream)
            self._done.synchronize()  # releases the GIL: other workers prepare and queue their calls meanwhile
        finally:
            self._ctx.pop()
        # Copies out of the page-locked buffers: the next call overwrites them while the decoder may still run.
        return [host.copy() for host in outputs]

    def close(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        self._ctx.push()
        try:
            for b in (getattr(self, "_input", None), *getattr(self, "_outputs", ())):
                if b is not None:
                    b.device.free()
            self._context = None
        finally:
            self._ctx.pop()
            self._ctx = None
        self._shared.release(self._profile)
