"""A Triton server outage is a camera outage: the cameras go `reconnecting` (retained MQTT status, with the reason),
nothing crashes, and they resume when the server is back, losing no frame of a recording."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.mqtt_broker import Subscriber, mosquitto  # noqa: F401 - the fixture
from tests.test_live_daemon import Running, wait_until
from tests.test_outputs import detection_frames, next_status
from tests.triton import MODEL_NAME, start_server

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install 'streamseg[triton]'")


def test_server_killed_and_restarted_mid_run(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    dynamic_seg_model: Path,
    bikes_mp4: Path,
) -> None:
    server = start_server(dynamic_seg_model)
    text = f"""
mqtt: {{host: {mosquitto.host}, port: {mosquitto.port}, topic_prefix: test}}
defaults:
  model: {{path: {MODEL_NAME}, backend: triton, triton: {{url: '{server.url}', timeout: 3}}}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}, loop: true}}
    fps: 5
    outputs: {{jsonl: {{path: out/bikes.jsonl}}}}
"""
    try:
        with Subscriber(mosquitto, "test/bikes/status") as sub, Running(tmp_path, text) as daemon:
            next_status(sub, "streaming")
            camera = daemon.cameras["bikes"]
            wait_until(lambda: camera.stats.frames >= 10, 60, "frames through Triton")

            server.kill()
            down = next_status(sub, "reconnecting", timeout=30)
            assert down["error"].startswith(f"Triton server {server.url} unavailable: "), down
            stalled = camera.stats.frames
            time.sleep(2)
            assert camera.stats.frames == stalled, "no frame is processed while the server is away"
            assert camera.state == "reconnecting" and not camera.done

            server.start()
            up = next_status(sub, "streaming", timeout=60)
            assert up["error"] is None
            wait_until(lambda: camera.stats.frames >= stalled + 10, 60, "frames after the server came back")
            later = [m.json()["state"] for m in sub.drain(quiet=0.5) if m.topic == "test/bikes/status"]
            assert "reconnecting" not in later, later  # frames in flight during the outage do not make it flap
        frames = detection_frames(tmp_path / "out" / "bikes.jsonl")
        assert frames == list(range(0, 5 * len(frames), 5)), "every 5th frame (5 fps of 25) once, in order: none lost"
    finally:
        server.kill()
