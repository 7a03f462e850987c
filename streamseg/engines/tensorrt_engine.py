"""Native TensorRT 10 engine (name-based I/O, execute_async_v3) with pycuda buffers.

tensorrt and pycuda are imported when an engine is opened, so this module imports without them.
"""

from __future__ import annotations

import json
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.engines.base import Engine, ModelInfo
from streamseg.engines.metadata import build_model_info
from streamseg.errors import ModelError

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


def _import_backend(path: Path) -> tuple[Any, Any]:
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError:
        raise ModelError(
            f"TensorRT engine {path} needs the [tensorrt] extra: pip install 'streamseg[tensorrt]'"
        ) from None
    return trt, cuda


class _Binding:
    """One I/O tensor: a page-locked host buffer and its device twin, both sized for the max shape."""

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
    """Runs a serialized engine on device 0 (or `device`) through one CUDA stream.

    The CUDA primary context is pushed around every call, so the engine can be used from any thread
    (one call at a time).
    """

    def __init__(self, path: Path, *, device: int = 0) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        trt, cuda = _import_backend(path)
        self._trt, self._cuda = trt, cuda
        self._lock = threading.Lock()
        meta, blob = split_engine_file(path.read_bytes())

        cuda.init()
        self._ctx = cuda.Device(device).retain_primary_context()
        self._ctx.push()
        try:
            self._open(path, meta, blob)
        except BaseException:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
            raise
        self._ctx.pop()
        self.name = "tensorrt"
        self.device = f"cuda:{device}"

    def _open(self, path: Path, meta: dict[str, Any], blob: bytes) -> None:
        trt, cuda = self._trt, self._cuda
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if meta.get("dla") is not None:  # Jetson exports may target a DLA core
            self._runtime.DLA_core = int(meta["dla"])
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise ModelError(
                f"cannot load TensorRT engine {path}: deserialization failed "
                "(built with another TensorRT version or for another GPU?)"
            )
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()

        self._inputs: list[_Binding] = []
        self._outputs: list[_Binding] = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            if self._engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                continue
            shape = tuple(self._engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):  # dynamic: allocate for the profile's max shape
                shape = tuple(self._engine.get_tensor_profile_shape(name, 0)[2])
            self._context.set_input_shape(name, shape)
            self._inputs.append(_Binding(cuda, name, shape, np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))))
        if len(self._inputs) != 1:
            raise ModelError(f"TensorRT engine {path} has {len(self._inputs)} inputs, expected 1 (images)")
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self._context.get_tensor_shape(name))  # resolved for the max input shape
                dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
                self._outputs.append(_Binding(cuda, name, shape, dtype))
        for b in (*self._inputs, *self._outputs):
            self._context.set_tensor_address(b.name, int(b.device))

        inp = self._inputs[0]
        self._input_shape = inp.shape
        self.info = info_from_metadata(
            path,
            meta,
            input_name=inp.name,
            input_shape=inp.shape,
            input_dtype=inp.dtype,
            output_names=[b.name for b in self._outputs],
            output_shapes=[b.shape for b in self._outputs],
        )

    def _set_input_shape(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        inp = self._inputs[0]
        if len(shape) != len(inp.shape) or any(s > m for s, m in zip(shape, inp.shape, strict=True)):
            raise ValueError(f"input shape {shape} does not fit the engine's input {inp.shape}")
        if shape != self._input_shape:
            self._context.set_input_shape(inp.name, shape)
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
        # One execution context and one set of buffers: callers sharing this engine object take turns.
        with self._lock:
            return self._infer(images)

    def _infer(self, images: np.ndarray) -> list[np.ndarray]:
        cuda = self._cuda
        inp = self._inputs[0]
        out_shapes = self._set_input_shape(tuple(images.shape))
        np.copyto(inp.view(images.shape), images, casting="same_kind")  # casts float32 -> float16 if needed
        self._ctx.push()
        try:
            cuda.memcpy_htod_async(inp.device, inp.host, self._stream)
            if not self._context.execute_async_v3(self._stream.handle):
                raise RuntimeError(f"TensorRT execution failed for {self.info.path}")
            for b in self._outputs:
                cuda.memcpy_dtoh_async(b.host, b.device, self._stream)
            self._stream.synchronize()
        finally:
            self._ctx.pop()
        # Copy out of the page-locked buffers: the next call overwrites them while the decoder may still run.
        return [b.view(shape).copy() for b, shape in zip(self._outputs, out_shapes, strict=True)]

    def close(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        self._ctx.push()
        try:
            for b in (*getattr(self, "_inputs", ()), *getattr(self, "_outputs", ())):
                b.device.free()
            self._context = self._engine = self._runtime = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
