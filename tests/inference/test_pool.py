"""StagePool: how many workers each backend gets, and what each worker's engine is told to allow."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamseg.config.model import ModelConfig
from streamseg.inference.pool import StagePool
from tests.fakes import FakeEngine


class Opened:
    """The keyword arguments of every engine the pool opened; `capacity` is what the fake engines report."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.capacity: int | None = None

    def create_engine(self, path: Path, **kwargs: object) -> FakeEngine:
        self.calls.append({"path": path, **kwargs})
        engine = FakeEngine(batch=-1)
        backend, device = kwargs.get("backend"), kwargs.get("device")
        engine.device = "triton" if backend == "triton" else "cpu" if device == "cpu" else "cuda:0"
        engine.capacity = self.capacity
        return engine


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Opened:
    opened = Opened()
    monkeypatch.setattr("streamseg.inference.pool.create_engine", opened.create_engine)
    return opened


def _stage(tmp_path: Path, **model: object):  # noqa: ANN202
    (tmp_path / "m.onnx").write_bytes(b"")
    cfg = ModelConfig.model_validate({"path": "m.onnx", **model}, context={"base_dir": tmp_path})
    return StagePool(tmp_path, cores=2).stage(cfg, cameras=2)


def test_triton_keeps_four_requests_in_flight_without_a_local_file(tmp_path: Path, opened: Opened) -> None:
    stage = _stage(tmp_path, path="yolov8n-seg", backend="triton", triton={"url": "grpc://triton:8001"})
    assert stage.workers == 4 and stage.solo is None
    assert all(c["path"] == tmp_path / "yolov8n-seg" and c["triton"].url == "grpc://triton:8001" for c in opened.calls)
    stage.close()


def test_tensorrt_gets_two_contexts_each_allowed_the_batch(tmp_path: Path, opened: Opened) -> None:
    stage = _stage(tmp_path, backend="tensorrt", batch_size=8, tensorrt={"precision": "fp32"})
    assert stage.workers == 2 and stage.solo is None
    assert [(c["contexts"], c["max_batch"], c["tensorrt"].precision) for c in opened.calls] == [(2, 8, "fp32")] * 2
    stage.close()


def test_workers_are_capped_by_what_the_engine_can_run_at_once(
    tmp_path: Path, opened: Opened, caplog: pytest.LogCaptureFixture
) -> None:
    opened.capacity = 1
    with caplog.at_level(logging.WARNING):
        stage = _stage(tmp_path, backend="tensorrt", workers=3)
    assert stage.workers == 1 and len(opened.calls) == 1
    assert "runs at most 1 call(s) at once: 1 worker(s), not 3" in caplog.text
    stage.close()


def test_cpu_torchscript_shares_the_cores_like_onnxruntime(tmp_path: Path, opened: Opened) -> None:
    (tmp_path / "m.torchscript").write_bytes(b"")
    stage = _stage(tmp_path, path="m.torchscript", device="cpu")
    assert stage.workers == 2 and stage.solo is not None  # 2 cores, 2 cameras: 2 workers x 1 thread, a solo on 2
    assert [c["threads"] for c in opened.calls] == [1, 1, 2]
    stage.close()
