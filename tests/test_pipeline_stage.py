"""Camera pipelines on a shared inference stage, with a fake engine (no model file): each camera gets its own
frames back in order under batching, every track ends, a frame that breaks the engine fails only its camera,
the daemon drains on stop, and frames and inputs live in memory the engine allocated."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from streamseg.config import load_config
from streamseg.config.camera import CameraConfig
from streamseg.daemon import Daemon
from streamseg.inference.stage import InferenceStage
from streamseg.models.yolo import YoloModel
from streamseg.pipeline import CameraPipeline
from streamseg.sinks import build_sinks
from tests.fakes import FakeEngine, box_x
from tests.media import grey_ramp

UP = [20 + 3 * i for i in range(50)]  # grey levels: frame i of each clip is told apart by its value
DOWN = [230 - 3 * i for i in range(50)]
POISON = 250  # the fake engine refuses a frame of this grey


def camera_config(tmp: Path, name: str, video: Path, **extra: object) -> CameraConfig:
    raw = {
        "source": {"url": str(video)},
        "model": {"path": "fake-seg.onnx"},
        "outputs": {"jsonl": {"path": str(tmp / f"{name}.jsonl")}},
        **extra,
    }
    return CameraConfig.model_validate(raw, context={"base_dir": tmp, "check_models": False})


def run_cameras(stage: InferenceStage, configs: dict[str, CameraConfig]) -> dict[str, CameraPipeline]:
    cameras = {
        name: CameraPipeline(name, cfg, YoloModel.from_config(stage.info, cfg.model), stage, build_sinks(name, cfg))
        for name, cfg in configs.items()
    }
    for camera in cameras.values():
        camera.start()
    for camera in cameras.values():
        assert camera.join(60), "the camera did not finish"
    return cameras


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def box_centres(objs: list[dict]) -> list[float]:
    frames = [o for o in objs if o["topic"] == "detections"]
    return [(f["detections"][0]["box"][0] + f["detections"][0]["box"][2]) / 2 for f in frames]


def test_cameras_sharing_a_batched_stage_each_get_their_own_frames_in_order(tmp_path: Path) -> None:
    clips = {"up": UP, "down": DOWN, "flat": [128] * 30 + UP[:20]}
    engines = [FakeEngine(batch=-1, delay=0.003), FakeEngine(batch=-1, delay=0.003)]
    stage = InferenceStage(engines, batch_size=4, batch_timeout=0.02).start()
    try:
        configs = {  # no tracker: the boxes as the engine gave them (a tracker smooths them)
            name: camera_config(tmp_path, name, grey_ramp(tmp_path / f"{name}.mp4", values), tracker={"type": "none"})
            for name, values in clips.items()
        }
        cameras = run_cameras(stage, configs)
    finally:
        stage.close()
    for name, values in clips.items():
        assert cameras[name].state == "stopped" and cameras[name].error is None
        objs = lines(tmp_path / f"{name}.jsonl")
        frames = [o["frame"] for o in objs if o["topic"] == "detections"]
        assert frames == list(range(len(values))), f"{name}: frames out of order or lost"
        # Each frame's detection came from that camera's own frame: its box sits where that grey puts it (within
        # one grey level, 0.94 px, of decoding's rounding; neighbouring frames differ by 3 levels).
        assert box_centres(objs) == pytest.approx([box_x(v / 255) for v in values], abs=1.0)
    assert max(stage.stats.batches) > 1, f"frames were batched across cameras: {stage.stats.batches}"
    assert stage.stats.frames == sum(len(v) for v in clips.values())


def test_every_track_ends_when_the_file_ends(tmp_path: Path) -> None:
    stage = InferenceStage([FakeEngine(), FakeEngine()]).start()
    try:
        cfg = camera_config(tmp_path, "cam", grey_ramp(tmp_path / "cam.mp4", UP))
        run_cameras(stage, {"cam": cfg})
    finally:
        stage.close()
    objs = lines(tmp_path / "cam.jsonl")
    events = [o for o in objs if o["topic"] == "events"]
    assert [e["type"] for e in events if e["type"] != "update"] == ["new", "end"], events
    assert objs[-1]["topic"] == "events" and objs[-1]["type"] == "end", "the end event closes the file"
    assert [o["topic"] for o in objs].count("detections") == len(UP)


def test_a_frame_that_breaks_the_engine_fails_only_its_camera(tmp_path: Path) -> None:
    def poisoned(images: np.ndarray) -> bool:
        return bool(np.isclose(images.mean(axis=(1, 2, 3)), POISON / 255, atol=1e-3).any())

    stage = InferenceStage([FakeEngine(batch=-1, fail=poisoned)], batch_size=4, batch_timeout=0.02).start()
    try:
        configs = {
            "good": camera_config(tmp_path, "good", grey_ramp(tmp_path / "good.mp4", UP)),
            "bad": camera_config(tmp_path, "bad", grey_ramp(tmp_path / "bad.mp4", UP[:10] + [POISON] + UP[10:])),
        }
        cameras = run_cameras(stage, configs)
        still_works = stage.submit(np.full((1, 3, 320, 320), 0.5, np.float32)).result(5)
    finally:
        stage.close()
    assert cameras["bad"].state == "failed" and "fake engine failure" in (cameras["bad"].error or "")
    assert cameras["good"].state == "stopped" and cameras["good"].error is None
    good = [o["frame"] for o in lines(tmp_path / "good.jsonl") if o["topic"] == "detections"]
    assert good == list(range(len(UP))), "the good camera lost nothing"
    bad = [o["frame"] for o in lines(tmp_path / "bad.jsonl") if o["topic"] == "detections"]
    assert bad == list(range(len(bad))) and len(bad) <= 10, "the bad camera stopped at the poisoned frame"
    assert still_works.batch == 1


class RecordingEngine(FakeEngine):
    """Records what was allocated through it: the host memory the pipeline uses must come from the engine."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.allocated: list[tuple[tuple[int, ...], np.dtype]] = []

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        self.allocated.append((tuple(shape), np.dtype(dtype)))
        return super().allocate(shape, dtype)


def test_frames_and_inputs_live_in_memory_the_engine_allocated(tmp_path: Path) -> None:
    engine = RecordingEngine()
    stage = InferenceStage([engine]).start()
    try:
        cfg = camera_config(tmp_path, "cam", grey_ramp(tmp_path / "cam.mp4", UP[:20], size=(320, 240)))
        run_cameras(stage, {"cam": cfg})
    finally:
        stage.close()
    shapes = set(engine.allocated)
    assert ((240, 320, 3), np.dtype(np.uint8)) in shapes, "ring slots come from the engine"
    assert ((1, 3, 320, 320), np.dtype(np.float32)) in shapes, "input tensors come from the engine"
    ring_slots = [a for a in engine.allocated if a[0] == (240, 320, 3)]
    inputs = [a for a in engine.allocated if a[0] == (1, 3, 320, 320)]
    assert len(ring_slots) <= cfg.source.buffer_slots and len(inputs) <= stage.depth + 1, "reused, not per frame"


@pytest.fixture
def fake_engines(monkeypatch: pytest.MonkeyPatch) -> list[FakeEngine]:
    """The daemon's engines, whatever the model file says: fakes (the file only has to exist)."""
    made: list[FakeEngine] = []

    def create_engine(path: Path, **kwargs: object) -> FakeEngine:
        engine = FakeEngine(batch=-1, delay=0.01)
        made.append(engine)
        return engine

    monkeypatch.setattr("streamseg.inference.pool.create_engine", create_engine)
    return made


def test_the_daemon_shares_one_stage_and_drains_on_stop(tmp_path: Path, fake_engines: list[FakeEngine]) -> None:
    (tmp_path / "fake-seg.onnx").write_bytes(b"")
    long = [20 + (i % 60) * 3 for i in range(400)]  # 16 s of video: stop() comes long before its end
    for name in ("a", "b"):
        grey_ramp(tmp_path / f"{name}.mp4", long)
    config = tmp_path / "cameras.yaml"
    config.write_text(
        "defaults:\n  model: {path: fake-seg.onnx, workers: 2, batch_size: 4, batch_timeout_ms: 20}\n"
        "cameras:\n"
        + "".join(f"  {n}:\n    source: {{url: {n}.mp4}}\n    outputs: {{jsonl: {{path: {n}.jsonl}}}}\n" for n in "ab")
    )
    daemon = Daemon(load_config(config), config)
    stopper = threading.Thread(target=lambda: (daemon.started.wait(30), _wait_frames(daemon, 40), daemon.stop()))
    stopper.start()
    code = daemon.run(handle_signals=False)
    stopper.join(5)
    assert code == 0
    assert len(fake_engines) == 3, "one stage shared by both cameras: two workers, and the solo engine"
    (stage,) = daemon.stats()["inference"]
    assert stage["workers"] == 2 and stage["frames"] == sum(c.stats.frames for c in daemon.cameras.values())
    for name, camera in daemon.cameras.items():
        objs = lines(tmp_path / f"{name}.jsonl")
        frames = [o["frame"] for o in objs if o["topic"] == "detections"]
        assert 40 <= len(frames) < len(long), "stopped mid-file"
        assert frames == list(range(len(frames))), "every frame taken from the decoder was finished, in order"
        assert camera.state == "stopped" and objs[-1]["type"] == "end"


def _wait_frames(daemon: Daemon, n: int) -> None:
    while any(c.stats.frames < n for c in daemon.cameras.values()):
        threading.Event().wait(0.02)
