"""Fakes of the documented TensorRT 10 Python API and of pycuda.driver, for machines without a GPU.

They implement exactly the calls streamseg makes (builder, ONNX parser, optimization profiles, int8 calibrator,
runtime, name-based execution contexts; pycuda's primary context, streams, events, page-locked and device memory)
and check how they are used: CUDA calls only inside the pushed context, an execution context's input shape within
its own optimization profile, async copies only from and to page-locked memory, one profile per context when the
batch axis is dynamic. Device memory is simulated with numpy arrays, so copies and bindings are checked end to end.

An engine "built" here remembers its ONNX file and runs it with onnxruntime when executed, so the whole TensorRT
data path (bindings, buffers, copies, shapes) can be compared with onnxruntime on the real model.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BLOB_PREFIX = b"FAKE-ENGINE"
VERSION = "10.3.0"


# --- pycuda.driver ------------------------------------------------------------------------------------


class FakePagelocked(bytearray):
    """The `base` of arrays from pagelocked_empty (pycuda's PagelockedHostAllocation)."""


class FakeAllocation:
    """Device memory: an address and the bytes behind it."""

    def __init__(self, driver: types.ModuleType, nbytes: int) -> None:
        self.addr = driver.next_addr
        driver.next_addr += max(nbytes, 1) + 256
        driver.memory[self.addr] = np.zeros(nbytes, np.uint8)
        self.freed = False
        self.driver = driver

    def __int__(self) -> int:
        return self.addr

    def free(self) -> None:
        self.freed = True


class FakeContext:
    def __init__(self) -> None:
        self.depth = 0
        self.detached = 0
        self.retained = 0
        self._lock = threading.Lock()

    def push(self) -> None:
        with self._lock:
            self.depth += 1

    def pop(self) -> None:
        with self._lock:
            assert self.depth > 0, "pop without push"
            self.depth -= 1

    def detach(self) -> None:
        self.detached += 1


def _pointer(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def make_pycuda(compute_capability: tuple[int, int] = (8, 7)) -> tuple[types.ModuleType, types.ModuleType]:
    driver = types.ModuleType("pycuda.driver")
    driver.ctx = FakeContext()
    driver.cc = compute_capability
    driver.log = []  # (op, stream handle, detail) of every queued operation, in order
    driver.pinned = []  # (shape, flags) of every page-locked allocation
    driver.memory = {}
    driver.next_addr = 0x1000
    driver.PagelockedHostAllocation = FakePagelocked
    driver.host_alloc_flags = types.SimpleNamespace(PORTABLE=1, DEVICEMAP=2, WRITECOMBINED=4)
    driver.event_flags = types.SimpleNamespace(DEFAULT=0, BLOCKING_SYNC=1, DISABLE_TIMING=2, INTERPROCESS=4)
    driver.init = lambda: None
    handles = itertools.count(0xBEEF)
    lock = driver.log_lock = threading.Lock()

    def in_context() -> None:
        assert driver.ctx.depth > 0, "CUDA call outside the context"

    def note(op: str, stream: Any, detail: Any = None) -> None:
        with lock:
            driver.log.append((op, getattr(stream, "handle", None), detail))

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        def retain_primary_context(self) -> FakeContext:
            driver.ctx.retained += 1
            return driver.ctx

        def compute_capability(self) -> tuple[int, int]:
            return driver.cc

    class Stream:
        def __init__(self) -> None:
            in_context()
            self.handle = next(handles)

        def synchronize(self) -> None:
            note("stream-sync", self)

    class Event:
        def __init__(self, flags: int = 0) -> None:
            in_context()
            self.flags = flags
            self.recorded_on: Stream | None = None

        def record(self, stream: Stream | None = None) -> Event:
            in_context()
            self.recorded_on = stream
            note("record", stream, self.flags)
            return self

        def synchronize(self) -> Event:
            assert self.recorded_on is not None, "waiting on an event never recorded"
            note("event-sync", self.recorded_on, self.flags)
            return self

        def query(self) -> bool:
            return True

    def pagelocked_empty(shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0) -> np.ndarray:
        in_context()
        driver.pinned.append((shape, mem_flags))
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        # like pycuda's, the array's base is the allocation itself
        return np.ndarray(shape, dtype, buffer=FakePagelocked(max(count, 1) * dtype.itemsize))

    def is_pinned(array: np.ndarray) -> bool:
        base: Any = array
        while base is not None:
            if isinstance(base, FakePagelocked):
                return True
            base = getattr(base, "base", None)
        return False

    def htod_async(dev: FakeAllocation, host: np.ndarray, stream: Stream) -> None:
        in_context()
        assert is_pinned(host), "async copy from pageable memory (pycuda: src must be page-locked)"
        note("htod", stream, _pointer(host))
        driver.memory[int(dev)][: host.nbytes] = host.view(np.uint8).ravel()

    def htod(dev: FakeAllocation, host: np.ndarray) -> None:
        in_context()
        driver.memory[int(dev)][: host.nbytes] = np.ascontiguousarray(host).view(np.uint8).ravel()

    def dtoh_async(host: np.ndarray, dev: FakeAllocation, stream: Stream) -> None:
        in_context()
        assert is_pinned(host), "async copy to pageable memory (pycuda: dest must be page-locked)"
        note("dtoh", stream, host.nbytes)
        host.view(np.uint8).reshape(-1)[:] = driver.memory[int(dev)][: host.nbytes]

    driver.Device = Device
    driver.Stream = Stream
    driver.Event = Event
    driver.pagelocked_empty = pagelocked_empty
    driver.mem_alloc = lambda nbytes: FakeAllocation(driver, nbytes)
    driver.memcpy_htod_async = htod_async
    driver.memcpy_htod = htod
    driver.memcpy_dtoh_async = dtoh_async
    package = types.ModuleType("pycuda")
    package.driver = driver
    return package, driver


# --- tensorrt -----------------------------------------------------------------------------------------------


def engine_blob(**spec: Any) -> bytes:
    """A serialized fake engine. spec: dynamic, input_dtype, profiles [[min, opt, max]], onnx (a path, run with
    onnxruntime), imgsz, built (the build's flags, for the tests to read)."""
    return BLOB_PREFIX + json.dumps(spec).encode()


class FakeCudaEngine:
    """Without `onnx`: images [B,3,S,S] -> output0 [B,38,84] and output1 [B,32,16,16], filled with the input's sum."""

    def __init__(self, trt: types.ModuleType, spec: dict[str, Any]) -> None:
        self.trt = trt
        self.spec = spec
        self.dynamic = bool(spec.get("dynamic"))
        size = int(spec.get("imgsz", 64))
        self.input_dtype = spec.get("input_dtype", "float32")
        self.session = None
        if spec.get("onnx"):
            import onnxruntime as ort

            self.session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
            outputs = self.session.get_outputs()
            self.shapes = {"images": (1, 3, size, size)} | {
                o.name: tuple(d if isinstance(d, int) else 1 for d in o.shape) for o in outputs
            }
            self.io = ["images", *(o.name for o in outputs)]
        else:
            self.shapes = {"images": (1, 3, size, size), "output0": (1, 38, 84), "output1": (1, 32, 16, 16)}
            self.io = ["images", "output0", "output1"]
        profiles = spec.get("profiles") or []
        self.profiles = [[tuple(s) for s in p] for p in profiles] or [[self.shapes["images"]] * 3]
        self.num_io_tensors = len(self.io)
        self.num_optimization_profiles = len(self.profiles)
        self.contexts: list[FakeExecutionContext] = []

    def get_tensor_name(self, i: int) -> str:
        return self.io[i]

    def get_tensor_mode(self, name: str) -> str:
        return self.trt.TensorIOMode.INPUT if name == "images" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        shape = self.shapes[name]
        return (-1, *shape[1:]) if self.dynamic else shape

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        assert name == "images"
        return list(self.profiles[profile])

    def get_tensor_dtype(self, name: str) -> str:
        return self.input_dtype if name == "images" else "float32"

    def create_execution_context(self) -> FakeExecutionContext:
        assert self.trt.driver.ctx.depth > 0, "context created outside the CUDA context"
        context = FakeExecutionContext(self)
        self.contexts.append(context)
        return context


class FakeExecutionContext:
    def __init__(self, engine: FakeCudaEngine) -> None:
        self.engine = engine
        self.profile = 0
        self.profile_stream: int | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.addresses: dict[str, int] = {}
        self.handles: list[int] = []
        self.before_execute: Any = None  # a test hook: called with the stream handle before computing

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        if not 0 <= index < self.engine.num_optimization_profiles:
            return False
        self.profile, self.profile_stream = index, stream
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        assert name == "images" and -1 not in shape
        low, _, high = self.engine.profiles[self.profile]
        if not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high, strict=True)):
            return False  # TensorRT refuses a shape outside the context's profile
        self.input_shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        assert self.input_shape is not None, "output shape asked before the input shape was set"
        shape = self.engine.shapes[name]
        return (self.input_shape[0], *shape[1:])

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        driver = self.engine.trt.driver
        assert driver.ctx.depth > 0, "execute outside the CUDA context"
        if self.engine.dynamic:
            others = [c for c in self.engine.contexts if c is not self and c.profile == self.profile]
            assert not others, "two execution contexts share one optimization profile of a dynamic engine"
        self.handles.append(stream_handle)
        if self.before_execute is not None:
            self.before_execute(stream_handle)
        with driver.log_lock:
            driver.log.append(("execute", stream_handle, self.profile))
        memory = driver.memory
        dtype = np.dtype(self.engine.trt.nptype(self.engine.input_dtype))
        count = int(np.prod(self.input_shape))
        images = memory[self.addresses["images"]].view(dtype)[:count].reshape(self.input_shape)
        if self.engine.session is not None:
            outputs = self.engine.session.run(None, {"images": images.astype(np.float32)})
        else:
            value = float(images.sum(dtype=np.float64))
            outputs = [np.full(self.get_tensor_shape(n), value, np.float32) for n in self.engine.io[1:]]
        for name, out in zip(self.engine.io[1:], outputs, strict=True):
            memory[self.addresses[name]][: out.nbytes] = np.ascontiguousarray(out, np.float32).view(np.uint8).ravel()
        return True


class FakeHostMemory(bytes):
    """IHostMemory: a buffer."""


def make_tensorrt(driver: types.ModuleType, version: str = VERSION) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.driver = driver
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT", NONE="NONE")
    trt.Logger = type("Logger", (), {"WARNING": 2, "INFO": 3, "__init__": lambda self, level=2: None})
    trt.nptype = lambda dtype: {"float32": np.float32, "float16": np.float16}[dtype]
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8", TF32="TF32")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.engines = []  # every deserialized engine
    trt.builds = []  # every build's (network, config)
    trt.parse_error = None  # set to a message to make parsing fail
    trt.fail_build = False
    trt.fast_fp16 = True

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            pass

    class Runtime:
        def __init__(self, logger: object) -> None:
            self.DLA_core = -1

        def deserialize_cuda_engine(self, blob: bytes) -> FakeCudaEngine | None:
            assert driver.ctx.depth > 0, "deserialization outside the CUDA context"
            if not bytes(blob).startswith(BLOB_PREFIX):
                return None
            engine = FakeCudaEngine(trt, json.loads(bytes(blob)[len(BLOB_PREFIX) :]))
            trt.engines.append(engine)
            return engine

    class Tensor:
        def __init__(self, name: str, shape: tuple[int, ...]) -> None:
            self.name, self.shape, self.dtype = name, shape, "float32"

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.inputs: list[Tensor] = []
            self.onnx: str | None = None

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> Tensor:
            return self.inputs[i]

    class OnnxParser:
        def __init__(self, network: Network, logger: object) -> None:
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            if trt.parse_error:
                self.num_errors = 1
                return False
            import onnxruntime as ort

            inp = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_inputs()[0]
            shape = tuple(d if isinstance(d, int) else -1 for d in inp.shape)
            self.network.inputs = [Tensor(inp.name, shape)]
            self.network.onnx = path
            return True

        def get_error(self, i: int) -> str:
            return trt.parse_error

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, min: tuple, opt: tuple, max: tuple) -> None:  # noqa: A002 - TensorRT's names
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class Config:
        def __init__(self) -> None:
            self.flags: set[str] = set()
            self.profiles: list[Profile] = []
            self.pools: dict[str, int] = {}
            self.int8_calibrator: Any = None

        def set_flag(self, flag: str) -> None:
            self.flags.add(flag)

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            self.pools[pool] = size

        def add_optimization_profile(self, profile: Profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

    class Builder:
        def __init__(self, logger: object) -> None:
            assert driver.ctx.depth > 0, "builder outside the CUDA context"
            if trt.fast_fp16 is not None:
                self.platform_has_fast_fp16 = trt.fast_fp16

        def create_network(self, flags: int) -> Network:
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> FakeHostMemory | None:
            trt.builds.append((network, config))
            if trt.fail_build:
                return None
            calibration = None
            if "INT8" in config.flags:
                calibration = calibrate(config.int8_calibrator, network)
            profiles = [p.shapes[network.inputs[0].name] for p in config.profiles]
            spec = {
                "dynamic": network.inputs[0].shape[0] == -1,
                "profiles": profiles,
                "onnx": network.onnx,
                "imgsz": network.inputs[0].shape[-1],
                "built": {"flags": sorted(config.flags), "calibration": calibration},
            }
            return FakeHostMemory(engine_blob(**spec))

    def calibrate(calibrator: Any, network: Network) -> dict[str, Any]:
        """What TensorRT does with an IInt8Calibrator: use the cache, else read batches until None, then save."""
        cached = calibrator.read_calibration_cache()
        if cached:
            return {"from_cache": True, "batches": []}
        size = calibrator.get_batch_size()
        shape = (size, *network.inputs[0].shape[1:])
        batches = []
        while (pointers := calibrator.get_batch([network.inputs[0].name])) is not None:
            data = driver.memory[pointers[0]].view(np.float32)[: int(np.prod(shape))].reshape(shape)
            batches.append({"shape": list(shape), "min": float(data.min()), "max": float(data.max())})
        calibrator.write_calibration_cache(b"calibration-table")
        return {"from_cache": False, "batches": batches}

    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    trt.Runtime = Runtime
    trt.OnnxParser = OnnxParser
    trt.Builder = Builder
    return trt


def built_spec(path: Path) -> dict[str, Any]:
    """The spec of a fake engine file written by streamseg (after its metadata header)."""
    from streamseg.engines.tensorrt_engine import split_engine_file

    _, blob = split_engine_file(path.read_bytes())
    return json.loads(blob[len(BLOB_PREFIX) :])


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch):
    """install(cc=(8, 7), version="10.3.0") -> (trt, driver): fake tensorrt and pycuda in sys.modules."""
    from streamseg.engines import tensorrt_build, tensorrt_engine

    def install(cc: tuple[int, int] = (8, 7), version: str = VERSION) -> tuple[types.ModuleType, types.ModuleType]:
        package, driver = make_pycuda(cc)
        trt = make_tensorrt(driver, version)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
        return trt, driver

    monkeypatch.setattr(tensorrt_engine._SharedEngine, "_registry", {})
    monkeypatch.setattr(tensorrt_build, "_sha_memo", {})
    return install
