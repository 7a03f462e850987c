"""TensorRTEngine without a GPU: metadata parsing, and I/O binding through fake tensorrt/pycuda modules.

A GPU cannot exist on the test machines, so this is the one place where the backend is faked: the
fakes implement the TensorRT 10 name-based API and pycuda calls the engine uses, and simulate device
memory with numpy arrays so the host<->device copies and bindings are checked end to end.
"""

from __future__ import annotations

import json
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from streamseg.engines import create_engine, read_model_info
from streamseg.engines.tensorrt_engine import TensorRTEngine, info_from_metadata, split_engine_file
from streamseg.errors import ModelError

ENGINE_BLOB = b"FAKE-SERIALIZED-ENGINE\x00\x01\x02"
META = {
    "task": "segment",
    "names": {"0": "person", "1": "bus"},
    "imgsz": [64, 64],
    "stride": 32,
    "batch": 1,
    "dla": None,
}


def ultralytics_engine_file(path: Path, meta: dict | None = META, blob: bytes = ENGINE_BLOB) -> Path:
    header = b""
    if meta is not None:
        data = json.dumps(meta).encode()
        header = struct.pack("<I", len(data)) + data
    path.write_bytes(header + blob)
    return path


# --- fake pycuda.driver ----------------------------------------------------------------------------


class FakeAllocation:
    memory: dict[int, np.ndarray] = {}
    _next = 0x1000

    def __init__(self, nbytes: int) -> None:
        self.addr = FakeAllocation._next
        FakeAllocation._next += max(nbytes, 1) + 256
        self.memory[self.addr] = np.zeros(nbytes, np.uint8)
        self.freed = False

    def __int__(self) -> int:
        return self.addr

    def free(self) -> None:
        self.freed = True


class FakeContext:
    def __init__(self) -> None:
        self.depth = 0
        self.detached = False

    def push(self) -> None:
        self.depth += 1

    def pop(self) -> None:
        assert self.depth > 0, "pop without push"
        self.depth -= 1

    def detach(self) -> None:
        self.detached = True


def make_pycuda() -> tuple[types.ModuleType, types.ModuleType]:
    driver = types.ModuleType("pycuda.driver")
    driver.ctx = FakeContext()
    driver.copies = []
    driver.init = lambda: None
    driver.Device = lambda index: types.SimpleNamespace(retain_primary_context=lambda: driver.ctx)
    driver.Stream = lambda: types.SimpleNamespace(handle=0xBEEF, synchronize=lambda: None)
    driver.pinned = []  # (shape, flags) of every page-locked allocation

    def pagelocked_empty(shape: object, dtype: object, mem_flags: int = 0) -> np.ndarray:
        assert driver.ctx.depth > 0, "CUDA call outside the context"
        driver.pinned.append((shape, mem_flags))
        return np.empty(shape, dtype)

    driver.pagelocked_empty = pagelocked_empty
    driver.host_alloc_flags = types.SimpleNamespace(PORTABLE=1, DEVICEMAP=2, WRITECOMBINED=4)
    driver.mem_alloc = FakeAllocation

    def htod(dev: FakeAllocation, host: np.ndarray, stream: object) -> None:
        assert driver.ctx.depth > 0, "CUDA call outside the context"
        driver.copies.append("htod")
        FakeAllocation.memory[int(dev)][: host.nbytes] = host.view(np.uint8).ravel()

    def dtoh(host: np.ndarray, dev: FakeAllocation, stream: object) -> None:
        assert driver.ctx.depth > 0, "CUDA call outside the context"
        driver.copies.append("dtoh")
        host.view(np.uint8)[:] = FakeAllocation.memory[int(dev)][: host.nbytes]

    driver.memcpy_htod_async = htod
    driver.memcpy_dtoh_async = dtoh
    package = types.ModuleType("pycuda")
    package.driver = driver
    return package, driver


# --- fake tensorrt (the TensorRT 10 name-based API) --------------------------------------------------


class FakeCudaEngine:
    """images [B,3,64,64] -> output0 [B,6+32,84] (filled with the input's sum), output1 [B,32,16,16]."""

    def __init__(self, trt: types.ModuleType, input_dtype: str, dynamic: bool) -> None:
        self.trt = trt
        self.input_dtype = input_dtype
        self.dynamic = dynamic
        self.io = ["images", "output0", "output1"]
        self.num_io_tensors = 3
        self.context: FakeExecutionContext | None = None

    def get_tensor_name(self, i: int) -> str:
        return self.io[i]

    def get_tensor_mode(self, name: str) -> str:
        return self.trt.TensorIOMode.INPUT if name == "images" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        batch = -1 if self.dynamic else 1
        return {"images": (batch, 3, 64, 64), "output0": (batch, 38, 84), "output1": (batch, 32, 16, 16)}[name]

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        assert name == "images" and profile == 0
        return [(1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64)]

    def get_tensor_dtype(self, name: str) -> str:
        return self.input_dtype if name == "images" else "float32"

    def create_execution_context(self) -> FakeExecutionContext:
        self.context = FakeExecutionContext(self)
        return self.context


class FakeExecutionContext:
    def __init__(self, engine: FakeCudaEngine) -> None:
        self.engine = engine
        self.input_shape: tuple[int, ...] | None = None
        self.addresses: dict[str, int] = {}
        self.handles: list[int] = []

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        assert name == "images" and -1 not in shape
        self.input_shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        assert self.input_shape is not None, "output shape asked before the input shape was set"
        shape = self.engine.get_tensor_shape(name)
        return (self.input_shape[0], *shape[1:])

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.handles.append(stream_handle)
        dtype = np.dtype(self.engine.trt.nptype(self.engine.input_dtype))
        count = int(np.prod(self.input_shape))
        images = FakeAllocation.memory[self.addresses["images"]].view(dtype)[:count]
        for name in ("output0", "output1"):
            n = int(np.prod(self.get_tensor_shape(name)))
            FakeAllocation.memory[self.addresses[name]].view(np.float32)[:n] = float(images.sum(dtype=np.float64))
        return True


def make_tensorrt(input_dtype: str = "float32", dynamic: bool = False) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT", NONE="NONE")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    trt.nptype = lambda dtype: {"float32": np.float32, "float16": np.float16}[dtype]
    trt.engines = []

    class Runtime:
        def __init__(self, logger: object) -> None:
            self.DLA_core = -1

        def deserialize_cuda_engine(self, blob: bytes) -> FakeCudaEngine | None:
            trt.deserialized = blob
            if blob != ENGINE_BLOB:
                return None
            engine = FakeCudaEngine(trt, input_dtype, dynamic)
            trt.engines.append(engine)
            return engine

    trt.Runtime = Runtime
    return trt


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch):
    def install(**kwargs: object) -> tuple[types.ModuleType, types.ModuleType]:
        trt = make_tensorrt(**kwargs)
        package, driver = make_pycuda()
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
        return trt, driver

    return install


# --- metadata (no fakes needed) ----------------------------------------------------------------------


def test_split_ultralytics_header(tmp_path: Path) -> None:
    data = ultralytics_engine_file(tmp_path / "m.engine").read_bytes()
    meta, blob = split_engine_file(data)
    assert meta["task"] == "segment" and blob == ENGINE_BLOB


@pytest.mark.parametrize(
    "data",
    [
        ENGINE_BLOB,  # trtexec engine, no header
        struct.pack("<I", 10_000_000) + b"x" * 100,  # length larger than the file
        struct.pack("<I", 4) + b"\xff\xfe\x00\x01" + ENGINE_BLOB,  # not UTF-8
        struct.pack("<I", 3) + b"abc" + ENGINE_BLOB,  # UTF-8 but not JSON
        b"ab",
    ],
)
def test_split_without_header_returns_everything(data: bytes) -> None:
    assert split_engine_file(data) == ({}, data)


def test_info_from_metadata_json_names() -> None:
    info = info_from_metadata(Path("m.engine"), META, output_shapes=[(1, 38, 84), (1, 32, 16, 16)])
    assert info.names == {0: "person", 1: "bus"}
    assert info.imgsz == (64, 64) and info.task == "segment" and info.stride == 32


def test_info_without_metadata_falls_back_to_shapes() -> None:
    info = info_from_metadata(Path("m.engine"), {}, input_shape=(1, 3, 96, 128), output_shapes=[(1, 84, 252)])
    assert info.imgsz == (96, 128) and info.task == "detect" and len(info.names) == 80


def test_read_model_info_needs_no_gpu(tmp_path: Path) -> None:
    info = read_model_info(ultralytics_engine_file(tmp_path / "m.engine"))
    assert info.task == "segment" and info.imgsz == (64, 64)


# --- engine with the fake backend --------------------------------------------------------------------


def test_missing_tensorrt_is_a_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    path = ultralytics_engine_file(tmp_path / "m.engine")
    with pytest.raises(ModelError) as err:
        create_engine(path)
    assert str(err.value) == (f"TensorRT engine {path} needs the [tensorrt] extra: pip install 'streamseg[tensorrt]'")


def test_binds_and_runs(tmp_path: Path, fake_backend) -> None:
    trt, driver = fake_backend()
    path = ultralytics_engine_file(tmp_path / "m.plan")
    engine = create_engine(path)
    assert isinstance(engine, TensorRTEngine) and engine.name == "tensorrt"
    assert trt.deserialized == ENGINE_BLOB  # the metadata header was stripped
    info = engine.info
    assert info.names == {0: "person", 1: "bus"} and info.imgsz == (64, 64)
    assert info.output_names == ("output0", "output1")
    assert info.output_shapes == ((1, 38, 84), (1, 32, 16, 16))

    context = trt.engines[0].context
    assert set(context.addresses) == {"images", "output0", "output1"}
    assert len(set(context.addresses.values())) == 3

    images = np.full((1, 3, 64, 64), 0.5, np.float32)
    out0, out1 = engine.infer(images)
    assert out0.shape == (1, 38, 84) and out1.shape == (1, 32, 16, 16)
    assert np.allclose(out0, images.sum()) and np.allclose(out1, images.sum())
    assert context.handles == [0xBEEF]
    assert driver.copies == ["htod", "dtoh", "dtoh"]
    assert driver.ctx.depth == 0

    out0[...] = -1  # returned arrays are copies: the next call must not see or overwrite them
    again, _ = engine.infer(images * 2)
    assert np.allclose(again, images.sum() * 2) and (out0 == -1).all()
    engine.close()
    assert driver.ctx.detached and driver.ctx.depth == 0


def test_float16_input_is_cast(tmp_path: Path, fake_backend) -> None:
    trt, _ = fake_backend(input_dtype="float16")
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.engine"))
    assert engine.info.input_dtype == np.float16
    out0, _ = engine.infer(np.full((1, 3, 64, 64), 0.25, np.float32))
    assert np.allclose(out0, 0.25 * 3 * 64 * 64)


def test_dynamic_batch_uses_profile_max_and_sets_shape(tmp_path: Path, fake_backend) -> None:
    trt, _ = fake_backend(dynamic=True)
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.engine", meta=None))
    assert engine.info.output_shapes[0] == (4, 38, 84)  # buffers sized for the max batch
    out0, out1 = engine.infer(np.ones((2, 3, 64, 64), np.float32))
    assert out0.shape == (2, 38, 84) and out1.shape == (2, 32, 16, 16)
    assert trt.engines[0].context.input_shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="does not fit"):
        engine.infer(np.ones((8, 3, 64, 64), np.float32))


def test_undeserializable_engine(tmp_path: Path, fake_backend) -> None:
    _, driver = fake_backend()
    path = ultralytics_engine_file(tmp_path / "m.engine", blob=b"garbage")
    with pytest.raises(ModelError, match="deserialization failed") as err:
        create_engine(path)
    assert str(path) in str(err.value)
    assert driver.ctx.depth == 0 and driver.ctx.detached


def test_cameras_sharing_an_engine_take_turns(tmp_path: Path, fake_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """One execution context and one set of buffers: concurrent callers must never interleave."""
    import threading
    import time

    trt, _ = fake_backend()
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.plan"))
    context = trt.engines[0].context
    running, overlaps = [0], []
    execute = context.execute_async_v3

    def slow_execute(handle: int) -> bool:
        running[0] += 1
        overlaps.append(running[0])
        time.sleep(0.005)  # long enough for another thread to barge in if nothing stops it
        ok = execute(handle)
        running[0] -= 1
        return ok

    monkeypatch.setattr(context, "execute_async_v3", slow_execute)
    results: dict[int, list[float]] = {0: [], 1: []}

    def camera(k: int) -> None:
        images = np.full((1, 3, 64, 64), k + 1, np.float32)
        for _ in range(10):
            results[k].append(float(engine.infer(images)[0].flat[0]))

    threads = [threading.Thread(target=camera, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlaps) == 1
    assert results[0] == [3 * 64 * 64] * 10 and results[1] == [2 * 3 * 64 * 64] * 10  # each got its own answer
    engine.close()


def test_host_buffers_are_page_locked_and_portable(tmp_path: Path, fake_backend) -> None:
    _, driver = fake_backend()
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.engine"))
    driver.pinned.clear()
    slot = engine.allocate((272, 640, 3), np.uint8)
    assert slot.shape == (272, 640, 3) and slot.dtype == np.uint8
    assert driver.pinned == [((272, 640, 3), driver.host_alloc_flags.PORTABLE)]
    assert driver.ctx.depth == 0, "the context is popped again"
