"""Pose and seg+pose (multitask) models through `streamseg run` to a real mosquitto: keypoints in every message.

The models are the known-output graphs of tests/models/pose_graphs.py (one person, the same in every frame), so
the keypoints each message must carry are those the decoder gives on a frame of the video's size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamseg.engines import create_engine
from streamseg.models import YoloModel
from streamseg.sinks.serialize import detection_dicts
from tests.models import pose_graphs
from tests.mqtt_broker import Subscriber, mosquitto  # noqa: F401 - the fixture
from tests.sinks.schemas import validate


def _expected(model: Path, shape_hw: tuple[int, int]) -> list[list[float]]:
    with create_engine(model, providers=["cpu"], threads=1) as engine:
        det = YoloModel(engine.info).predict(engine, np.zeros((*shape_hw, 3), np.uint8))
    (d,) = detection_dicts(det, "none")
    return d["keypoints"]


@pytest.mark.parametrize("task", ["pose", "multitask"])
def test_keypoints_reach_mqtt_and_jsonl(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    bikes_mp4: Path,
    task: str,
) -> None:
    build = pose_graphs.pose_graph if task == "pose" else pose_graphs.multitask_graph
    model = build(tmp_path / f"{task}.onnx")
    path = tmp_path / "cameras.yaml"
    path.write_text(
        f"""
mqtt: {{host: {mosquitto.host}, port: {mosquitto.port}, topic_prefix: test}}
defaults:
  model: {{path: {model.name}}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}, loop: false}}
    fps: 2
    mask_format: polygon
    outputs:
      jsonl: {{path: out/bikes.jsonl}}
"""
    )
    with Subscriber(mosquitto, "test/bikes/detections") as sub:
        proc = subprocess.run(
            [sys.executable, "-m", "streamseg", "run", str(path)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        frames = [m.json() for m in sub.drain(quiet=1.0)]
    assert 19 <= len(frames) <= 21  # 10 s at fps 2
    expected = _expected(model, (272, 640))
    assert len(expected) == 17 and all(len(k) == 3 for k in expected)
    tracked = 0
    for f in frames:
        validate("detections", f)
        (d,) = f["detections"]
        assert d["label"] == "person" and d["keypoints"] == expected
        assert ("mask" in d) == (task == "multitask")
        tracked += d.get("track_id") is not None
    assert tracked >= len(frames) - 3  # the tracker confirms the person and keeps the keypoints with it
    lines = [json.loads(line) for line in (tmp_path / "out" / "bikes.jsonl").read_text().splitlines()]
    with_kpts = [d for line in lines for d in line.get("detections", [])]
    assert with_kpts and all(d["keypoints"] == expected for d in with_kpts)
