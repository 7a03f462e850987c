"""TensorRTEngine without a GPU: metadata, and execution through fakes of the TensorRT 10 / pycuda APIs.

A GPU cannot exist on the test machines, so the backend is faked (tests/engines/fake_tensorrt.py): the fakes
implement the documented calls the engine makes and check how they are used (context pushed, profiles per
context, async copies from page-locked memory only), with device memory simulated by numpy arrays.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from streamseg.engines import create_engine, read_model_info
from streamseg.engines.tensorrt_engine import TensorRTEngine, info_from_metadata, split_engine_file
from streamseg.errors import ModelError
from tests.engines.fake_tensorrt import engine_blob

META = {
    "task": "segment",
    "names": {"0": "person", "1": "bus"},
    "imgsz": [64, 64],
    "stride": 32,
    "batch": 1,
    "dla": None,
}
STATIC = engine_blob()
DYNAMIC = engine_blob(dynamic=True, profiles=[[[1, 3, 64, 64], [2, 3, 64, 64], [4, 3, 64, 64]]])
TWO_PROFILES = engine_blob(dynamic=True, profiles=[[[1, 3, 64, 64], [4, 3, 64, 64], [4, 3, 64, 64]]] * 2)


def ultralytics_engine_file(path: Path, meta: dict | None = META, blob: bytes = STATIC) -> Path:
    header = b""
    if meta is not None:
        data = json.dumps(meta).encode()
        header = struct.pack("<I", len(data)) + data
    path.write_bytes(header + blob)
    return path


# --- metadata (no fakes needed) ----------------------------------------------------------------------


def test_split_ultralytics_header(tmp_path: Path) -> None:
    data = ultralytics_engine_file(tmp_path / "m.engine").read_bytes()
    meta, blob = split_engine_file(data)
    assert meta["task"] == "segment" and blob == STATIC


@pytest.mark.parametrize(
    "data",
    [
        STATIC,  # trtexec engine, no header
        struct.pack("<I", 10_000_000) + b"x" * 100,  # length larger than the file
        struct.pack("<I", 4) + b"\xff\xfe\x00\x01" + STATIC,  # not UTF-8
        struct.pack("<I", 3) + b"abc" + STATIC,  # UTF-8 but not JSON
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
    assert str(err.value) == (
        f"TensorRT engine {path} needs TensorRT and pycuda (tensorrt is not installed): "
        "pip install 'streamseg[tensorrt]', or on a Jetson use JetPack's TensorRT"
    )


def test_binds_and_runs(tmp_path: Path, fake_gpu) -> None:
    trt, driver = fake_gpu()
    path = ultralytics_engine_file(tmp_path / "m.plan")
    engine = create_engine(path)
    assert isinstance(engine, TensorRTEngine) and engine.name == "tensorrt" and engine.device == "cuda:0"
    info = engine.info
    assert info.names == {0: "person", 1: "bus"} and info.imgsz == (64, 64) and info.batch == 1
    assert info.output_names == ("output0", "output1")
    assert info.output_shapes == ((1, 38, 84), (1, 32, 16, 16))

    context = trt.engines[0].contexts[0]
    assert set(context.addresses) == {"images", "output0", "output1"}
    assert len(set(context.addresses.values())) == 3

    images = np.full((1, 3, 64, 64), 0.5, np.float32)
    out0, out1 = engine.infer(images)
    assert out0.shape == (1, 38, 84) and out1.shape == (1, 32, 16, 16)
    assert np.allclose(out0, images.sum()) and np.allclose(out1, images.sum())
    stream = context.handles[0]
    # one call: copy in, compute, copy out, all on the worker's stream, then the event behind them is waited on
    assert [(op, s) for op, s, _ in driver.log] == [
        ("htod", stream),
        ("execute", stream),
        ("dtoh", stream),
        ("dtoh", stream),
        ("record", stream),
        ("event-sync", stream),
    ]
    flags = driver.log[-1][2]
    assert flags & driver.event_flags.BLOCKING_SYNC, "a waiting worker must sleep, not spin a CPU core"
    assert driver.ctx.depth == 0

    out0[...] = -1  # returned arrays are copies: the next call must not see or overwrite them
    again, _ = engine.infer(images * 2)
    assert np.allclose(again, images.sum() * 2) and (out0 == -1).all()
    engine.close()
    assert driver.ctx.detached == 1 and driver.ctx.depth == 0


def test_float16_input_is_cast(tmp_path: Path, fake_gpu) -> None:
    fake_gpu()
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.engine", blob=engine_blob(input_dtype="float16")))
    assert engine.info.input_dtype == np.float16
    out0, _ = engine.infer(np.full((1, 3, 64, 64), 0.25, np.float32))
    assert np.allclose(out0, 0.25 * 3 * 64 * 64)


def test_dynamic_batch_uses_profile_max_and_sets_shape(tmp_path: Path, fake_gpu) -> None:
    trt, driver = fake_gpu()
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.engine", meta=None, blob=DYNAMIC))
    assert engine.info.batch == -1  # the stage may batch
    assert engine.info.output_shapes[0] == (None, 38, 84)  # the decoder sees a dynamic batch axis
    assert driver.pinned[0][0] == 4 * 3 * 64 * 64  # the input buffer is sized for the profile's largest batch
    out0, out1 = engine.infer(np.ones((2, 3, 64, 64), np.float32))
    assert out0.shape == (2, 38, 84) and out1.shape == (2, 32, 16, 16)
    assert trt.engines[0].contexts[0].input_shape == (2, 3, 64, 64)
    assert [d for op, _, d in driver.log if op == "dtoh"] == [2 * 38 * 84 * 4, 2 * 32 * 16 * 16 * 4]  # only 2 back
    with pytest.raises(ValueError, match="does not fit"):
        engine.infer(np.ones((8, 3, 64, 64), np.float32))


def test_undeserializable_engine(tmp_path: Path, fake_gpu) -> None:
    _, driver = fake_gpu(cc=(8, 6))
    path = ultralytics_engine_file(tmp_path / "m.engine", blob=b"garbage")
    with pytest.raises(ModelError) as err:
        create_engine(path)
    assert str(err.value) == (
        f"cannot load TensorRT engine {path}: TensorRT 10.3.0 refused it on this GPU (sm86); it was built by another "
        "TensorRT version, for another GPU, or is damaged: rebuild it from its ONNX file "
        "(streamseg export --format engine)"
    )
    assert driver.ctx.depth == 0 and driver.ctx.detached == driver.ctx.retained


def _streamseg_meta(key: str, blob: bytes) -> dict:
    return {**META, "streamseg": {"key": key, "engine_sha256": hashlib.sha256(blob).hexdigest()}}


@pytest.mark.parametrize(
    ("key", "blob", "why"),
    [
        ("abc/fp16/static1/trt8.6.1/sm87", STATIC, "was built with TensorRT 8.6.1, this is TensorRT 10.3.0"),
        ("abc/fp16/static1/trt10.3.0/sm72", STATIC, "was built for a sm72 GPU, this one is sm87"),
        ("abc/fp16/static1/trt10.3.0/sm87", None, "is damaged (checksum mismatch)"),
    ],
    ids=["stale-tensorrt", "foreign-gpu", "damaged"],
)
def test_stale_foreign_or_damaged_engine_is_refused_in_one_line(
    tmp_path: Path, fake_gpu, key: str, blob: bytes | None, why: str
) -> None:
    """Our own engines say what they were built for: one clear line, and TensorRT never reads a foreign file."""
    trt, _ = fake_gpu()
    meta = _streamseg_meta(key, STATIC)
    path = ultralytics_engine_file(tmp_path / "m.engine", meta=meta, blob=blob or STATIC[:-3])
    with pytest.raises(ModelError) as err:
        create_engine(path)
    assert (
        str(err.value)
        == f"TensorRT engine {path} {why}: rebuild it from its ONNX file (streamseg export --format engine)"
    )
    assert trt.engines == []  # refused before deserialization


def test_workers_share_the_engine_each_with_its_own_context_stream_and_profile(tmp_path: Path, fake_gpu) -> None:
    trt, driver = fake_gpu()
    path = ultralytics_engine_file(tmp_path / "m.engine", blob=TWO_PROFILES)
    first, second = create_engine(path), create_engine(path)
    assert len(trt.engines) == 1, "the engine is deserialized once and shared"
    contexts = trt.engines[0].contexts
    assert [c.profile for c in contexts] == [0, 1]
    assert contexts[0].profile_stream != contexts[1].profile_stream  # each selected on its own stream
    assert first.capacity == second.capacity == 2
    with pytest.raises(ModelError, match="2 optimization profile.*all are in use"):
        create_engine(path)
    first.infer(np.ones((3, 3, 64, 64), np.float32))
    second.infer(np.ones((4, 3, 64, 64), np.float32))
    assert contexts[0].handles != contexts[1].handles
    second.close()
    third = create_engine(path)  # the freed profile is taken again
    assert trt.engines[0].contexts[-1].profile == 1
    first.close()
    third.close()
    assert driver.ctx.detached == 1 and driver.ctx.depth == 0  # the last one released the engine


def test_copy_of_the_next_batch_overlaps_compute(tmp_path: Path, fake_gpu) -> None:
    """Two workers: while one computes, the other's input copy is queued on its own stream. An engine that ran
    one call at a time (a lock around copy-compute-copy) makes the first worker wait here in vain."""
    trt, driver = fake_gpu()
    path = ultralytics_engine_file(tmp_path / "m.engine", blob=TWO_PROFILES)
    workers = [create_engine(path), create_engine(path)]
    contexts = trt.engines[0].contexts
    second_copied = threading.Event()
    overlapped: list[bool] = []

    def compute_first(handle: int) -> None:  # worker 0's compute waits until worker 1 has queued its copy
        overlapped.append(second_copied.wait(5))

    contexts[0].before_execute = compute_first
    original = driver.memcpy_htod_async

    def htod(dev: object, host: np.ndarray, stream: object) -> None:
        original(dev, host, stream)
        if stream.handle == contexts[1].profile_stream:
            second_copied.set()

    driver.memcpy_htod_async = htod
    results: dict[int, np.ndarray] = {}

    def run(k: int) -> None:
        results[k] = workers[k].infer(np.full((1, 3, 64, 64), k + 1, np.float32))[0]

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    threads[0].start()
    threads[1].start()
    for t in threads:
        t.join(10)
    assert overlapped == [True]
    assert np.allclose(results[0], 3 * 64 * 64) and np.allclose(results[1], 2 * 3 * 64 * 64)  # each its own answer
    for w in workers:
        w.close()


def test_page_locked_input_is_copied_directly(tmp_path: Path, fake_gpu) -> None:
    """Inputs from allocate() (camera tensors, stage batches) go to the device as they are; others are staged."""
    _, driver = fake_gpu()
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.engine"))
    pinned = engine.allocate((1, 3, 64, 64), np.float32)
    pinned[...] = 1.0
    engine.infer(pinned)
    engine.infer(np.ones((1, 3, 64, 64), np.float32))  # pageable: through the engine's own pinned buffer
    sources = [detail for op, _, detail in driver.log if op == "htod"]
    assert sources[0] == pinned.__array_interface__["data"][0]
    assert sources[1] != sources[0]


def test_host_buffers_are_page_locked_and_portable(tmp_path: Path, fake_gpu) -> None:
    _, driver = fake_gpu()
    engine = create_engine(ultralytics_engine_file(tmp_path / "m.engine"))
    driver.pinned.clear()
    slot = engine.allocate((272, 640, 3), np.uint8)
    assert slot.shape == (272, 640, 3) and slot.dtype == np.uint8
    assert driver.pinned == [((272, 640, 3), driver.host_alloc_flags.PORTABLE)]
    assert driver.ctx.depth == 0, "the context is popped again"


def test_tensorrt_engines_refuse_the_cpu(tmp_path: Path, fake_gpu) -> None:
    fake_gpu()
    path = ultralytics_engine_file(tmp_path / "m.engine")
    with pytest.raises(ModelError, match="run on a GPU, not on device: cpu"):
        create_engine(path, device="cpu")
