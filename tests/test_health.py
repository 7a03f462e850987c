"""health() on a running daemon: a camera waiting for a camera that does not answer is alive (not hung), but not
healthy; a streaming one is both. Real model, real video, a real (closed) RTSP port."""

from __future__ import annotations

import time
from pathlib import Path

from streamseg.health import health, summary
from tests.mqtt_broker import free_port
from tests.service import InProcess


def test_a_camera_waiting_for_frames_is_alive_but_not_healthy(
    tmp_path: Path, fast_seg_model: Path, bikes_mp4: Path
) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(
        f"""
hang_timeout: 1
defaults:
  model: {{path: {fast_seg_model}}}
cameras:
  gate:
    source: {{url: "rtsp://127.0.0.1:{free_port()}/nothing", timeout: 1, reconnect: {{initial: 0.2, max: 0.5}}}}
  street:
    source: {{url: {bikes_mp4}, loop: true}}
    fps: 5
"""
    )
    with InProcess(config) as running:
        cameras = running.daemon.cameras
        deadline = time.monotonic() + 30
        while cameras["street"].stats.frames < 5 or cameras["gate"].reconnects < 2:
            assert time.monotonic() < deadline, "the cameras did not get going"
            time.sleep(0.1)
        time.sleep(2)  # twice hang_timeout without a single frame for the gate
        ok, details = health(cameras, hang_timeout=1)
    assert not ok
    assert details["gate"]["alive"] and details["gate"]["hung"] is None and not details["gate"]["healthy"]
    assert details["gate"]["state"] in ("starting", "reconnecting")
    assert details["street"] == {**details["street"], "state": "streaming", "healthy": True, "alive": True}
    assert summary(details).startswith("1/2 cameras streaming, ")
    assert f"gate: {details['gate']['state']}" in summary(details)
