"""TorchScriptEngine: the real Ultralytics .torchscript export on the CPU (parity with onnxruntime on the same
network), its metadata without torch, and the CUDA path (own stream, pinned buffers, non-blocking copies, an event
to wait on) through a fake of the torch calls it makes, since no GPU exists here."""

from __future__ import annotations

import contextlib
import json
import sys
import types
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamseg.engines import create_engine, read_model_info
from streamseg.engines.torchscript_engine import WARMUP_RUNS, TorchScriptEngine
from streamseg.errors import ModelError
from streamseg.models import YoloModel


@pytest.fixture(scope="module")
def engines(torchscript_model: Path, fast_seg_model: Path) -> tuple[TorchScriptEngine, object]:
    pytest.importorskip("torch", reason="torch is not installed: pip install 'streamseg[torch]'")
    ours = create_engine(torchscript_model, device="cpu", threads=2)
    reference = create_engine(fast_seg_model, providers=["cpu"], threads=2)
    return ours, reference


def test_metadata_is_read_without_torch(torchscript_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    info = read_model_info(torchscript_model)
    assert info.task == "segment" and info.imgsz == (320, 320) and info.batch == 1
    assert info.names[0] == "person" and len(info.names) == 80


def test_without_torch_is_one_clear_error(torchscript_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModelError) as err:
        create_engine(torchscript_model)
    assert str(err.value) == (
        f"TorchScript model {torchscript_model} needs torch: pip install 'streamseg[torch]' (or the torch build "
        "for your platform, e.g. NVIDIA's wheel on a Jetson)"
    )


def test_not_a_torchscript_file(tmp_path: Path) -> None:
    path = tmp_path / "model.torchscript"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match=f"cannot read TorchScript model {path}: not a TorchScript archive"):
        read_model_info(path)


def test_outputs_match_the_onnx_export(engines: tuple) -> None:
    ours, reference = engines
    assert ours.name == "torchscript[cpu]" and ours.device == "cpu"
    assert ours.info.output_shapes == ((1, 116, 2100), (1, 32, 80, 80))
    assert ours.info.names == reference.info.names
    x = np.random.default_rng(1).random((1, 3, 320, 320), dtype=np.float32)
    for a, b in zip(ours.infer(x), reference.infer(x), strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-3


def _video_frames(path: Path, every: int = 80) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(video=0)) if i % every == 0]


def test_detections_match_onnxruntime(engines: tuple, bus_jpg: Path, zidane_jpg: Path, bikes_mp4: Path) -> None:
    """bus.jpg, zidane.jpg and frames from bikes.mp4: the same objects, boxes, scores and masks. (torch's CPU
    convolutions are slow here, ~0.3-1 s a frame on 2 shared cores: a few frames; the `streamseg run` parity test
    covers 50 video frames.)"""
    ours, reference = engines
    images = [cv2.imread(str(bus_jpg)), cv2.imread(str(zidane_jpg)), *_video_frames(bikes_mp4)]
    found = 0
    for image in images:
        a = YoloModel(ours.info).predict(ours, image)
        b = YoloModel(reference.info).predict(reference, image)
        assert a.class_id.tolist() == b.class_id.tolist()
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=2e-3)
        for ma, mb in zip(a.mask, b.mask, strict=True):
            assert (ma & mb).sum() / (ma | mb).sum() >= 0.98
        found += len(a)
    assert found >= 10


# --- the CUDA path, through a fake of the torch calls -------------------------------------------------------


class FakeTensor:
    def __init__(self, torch: types.ModuleType, data: np.ndarray, device: str = "cpu", pinned: bool = False) -> None:
        self.torch, self.data, self.device, self.pinned = torch, data, device, pinned

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def to(self, device: str, non_blocking: bool = False) -> FakeTensor:
        self.torch.ops.append(("h2d", self.torch.current, non_blocking, self.pinned))
        return FakeTensor(self.torch, self.data.copy(), str(device))

    def copy_(self, src: FakeTensor, non_blocking: bool = False) -> FakeTensor:
        self.torch.ops.append(("d2h", self.torch.current, non_blocking, self.pinned))
        self.data[...] = src.data
        return self

    def numpy(self) -> np.ndarray:
        assert self.device == "cpu"
        return self.data


def make_torch(dynamic: bool = False) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.__version__ = "2.13.0+fake"
    torch.ops, torch.current, torch.batches = [], None, []
    torch.device = str
    torch.set_num_threads = lambda n: None
    torch.inference_mode = contextlib.nullcontext
    torch.from_numpy = lambda a: FakeTensor(torch, a, pinned=getattr(a, "pinned_by_fake", False))

    def empty(shape: tuple, dtype: object = np.float32, pin_memory: bool = False) -> FakeTensor:
        return FakeTensor(torch, np.zeros(shape, dtype), pinned=pin_memory)

    torch.empty = empty

    class Module:
        def eval(self) -> Module:
            return self

        def __call__(self, x: FakeTensor) -> list[FakeTensor]:
            assert x.device.startswith("cuda"), "the module runs on the GPU"
            torch.ops.append(("forward", torch.current))
            torch.batches.append(x.shape[0])
            total = float(x.data.sum())
            return [FakeTensor(torch, np.full((x.shape[0], 116, 2100), total, np.float32), x.device)]

    def load(path: str, _extra_files: dict, map_location: str) -> Module:
        meta = {"task": "segment", "imgsz": [320, 320], "batch": 1, "names": {"0": "a"}, "args": {"dynamic": dynamic}}
        _extra_files["config.txt"] = json.dumps(meta)
        return Module()

    torch.jit = types.SimpleNamespace(load=load)

    class Stream:
        def __init__(self, device: str) -> None:
            self.device = device

    class Event:
        def __init__(self, blocking: bool = False) -> None:
            self.blocking = blocking

        def record(self, stream: Stream) -> None:
            torch.ops.append(("record", stream))

        def synchronize(self) -> None:
            torch.ops.append(("sync", self.blocking))

    @contextlib.contextmanager
    def stream(s: Stream):  # noqa: ANN202
        torch.current = s
        yield
        torch.current = None

    torch.cuda = types.SimpleNamespace(is_available=lambda: True, Stream=Stream, Event=Event, stream=stream)
    return torch


def test_cuda_path_queues_copies_and_compute_on_the_workers_stream(
    torchscript_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = make_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    first = create_engine(torchscript_model, device="cuda:1")
    second = create_engine(torchscript_model, device="cuda:1")
    assert first.device == "cuda:1" and first.name == "torchscript[cuda:1]"
    assert first._stream is not second._stream, "each worker has its own CUDA stream"
    torch.ops.clear()
    images = np.full((1, 3, 320, 320), 0.5, np.float32)
    (out,) = first.infer(images)
    stream = first._stream
    assert torch.ops == [
        ("h2d", stream, True, False),  # non-blocking, on the worker's stream
        ("forward", stream),
        ("d2h", stream, True, True),  # into a pinned host tensor, non-blocking
        ("record", stream),  # the event behind the copies
        ("sync", True),  # waited on without spinning
    ]
    assert np.allclose(out, images.sum())
    out[...] = -1  # a copy: the pinned buffer is reused by the next call
    (again,) = first.infer(images)
    assert np.allclose(again, images.sum())


@pytest.mark.parametrize("dynamic", [True, False])
def test_every_batch_size_the_stage_sends_is_warmed_up_when_the_engine_opens(
    torchscript_model: Path, monkeypatch: pytest.MonkeyPatch, dynamic: bool
) -> None:
    """TorchScript optimizes a graph per input shape on its first runs: on an H200 a batch size met for the first
    time took up to 4 s a call, so a camera's first frames stalled for seconds. The engine runs them at open."""
    torch = make_torch(dynamic=dynamic)
    monkeypatch.setitem(sys.modules, "torch", torch)
    engine = create_engine(torchscript_model, device="cuda", max_batch=4)
    if dynamic:
        assert engine.info.batch == -1
        assert torch.batches == [b for b in (1, 2, 3, 4) for _ in range(WARMUP_RUNS)]
    else:  # a fixed batch: only that size ever runs
        assert engine.info.batch == 1 and torch.batches == [1] * WARMUP_RUNS


def test_cuda_without_a_gpu_is_one_clear_error(torchscript_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = make_torch()
    torch.cuda.is_available = lambda: False
    monkeypatch.setitem(sys.modules, "torch", torch)
    with pytest.raises(ModelError) as err:
        create_engine(torchscript_model, device="cuda")
    assert str(err.value) == f"{torchscript_model}: device cuda asked for, but torch 2.13.0+fake sees no CUDA GPU"
