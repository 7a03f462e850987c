"""`streamseg run` with an annotated RTSP output: the RTSP server dies and comes back, detections on MQTT go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av

from tests.mqtt_broker import Subscriber, mosquitto  # noqa: F401 - the fixture
from tests.rtsp import rtsp_record_server, rtsp_server  # noqa: F401 - the fixtures
from tests.sinks.schemas import validate


def _collect(sub: Subscriber, seconds: float, into: list) -> None:
    into.extend(sub.drain(quiet=seconds, limit=seconds))


def _frames(path: Path) -> tuple[str, tuple[int, int], int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, (stream.codec_context.width, stream.codec_context.height), n


def test_the_rtsp_server_restarting_never_touches_detection(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    rtsp_server,  # noqa: F811 - the camera
    rtsp_record_server,  # noqa: F811 - where the annotated stream goes (as MediaMTX would take it)
    seg_model: Path,
) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        f"""
mqtt: {{host: {mosquitto.host}, port: {mosquitto.port}, topic_prefix: test}}
stats_interval: 1
defaults:
  model: {{path: {seg_model}}}
cameras:
  front:
    source: {{url: "{rtsp_server.url("test")}"}}
    fps: 5
    outputs:
      rtsp: {{url: "{rtsp_record_server.url("push")}", preset: ultrafast}}
"""
    )
    log = (tmp_path / "daemon.log").open("w")
    messages: list = []
    with Subscriber(mosquitto, "test/#") as sub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamseg", "run", str(path)],
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            messages.append(sub.wait_for("test/front/detections", timeout=90))
            _collect(sub, 3.0, messages)  # publishing for 3 s
            assert rtsp_record_server.recordings(), "nothing reached the RTSP server"
            killed = time.time()
            rtsp_record_server.stop()  # the server dies without a word
            _collect(sub, 4.0, messages)
            rtsp_record_server.start()
            back = time.time()
            deadline = time.monotonic() + 30  # the next retry (backoff: 0.5 s doubling) reconnects
            while len(rtsp_record_server.recordings()) < 2 and time.monotonic() < deadline:
                _collect(sub, 0.5, messages)
            _collect(sub, 2.0, messages)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        messages += sub.drain(quiet=1.0)
    stderr = (tmp_path / "daemon.log").read_text()
    assert proc.returncode == 0, stderr

    # Detection went on at the camera's rate through the outage: no gap in the frames published.
    frames = [m.json() for m in messages if m.topic == "test/front/detections"]
    captured = [f["capture_ts"] for f in frames]
    assert max(b - a for a, b in zip(captured, captured[1:], strict=False)) < 1.0, "detections stalled"
    during = [t for t in captured if killed <= t <= back]
    assert len(during) >= 0.7 * 5 * (back - killed), (len(during), back - killed)

    # The camera said its RTSP output was failing, with the reason, then streaming again.
    statuses = [m.json() for m in messages if m.topic == "test/front/status"]
    degraded = [s for s in statuses if s["state"] == "degraded"]
    assert degraded and degraded[0]["error"].startswith(f"rtsp output {rtsp_record_server.url('push')}: ")
    after = statuses[statuses.index(degraded[-1]) + 1 :]
    assert any(s["state"] == "streaming" for s in after), statuses
    stats = [m.json() for m in messages if m.topic == "test/stats"]
    for s in stats:
        validate("stats", s)
    rtsp = stats[-1]["cameras"]["front"]["sinks"]["rtsp"]
    assert rtsp["connects"] == 2 and rtsp["state"] == "ok" and rtsp["written"] > 20

    # Both publishes arrived: annotated H.264 at the camera's size, frames at the processed rate.
    first, second = rtsp_record_server.recordings()
    for recording in (first, second):
        codec, size, n = _frames(recording)
        assert codec == "h264" and size == (320, 240) and n >= 8, (recording, codec, size, n)
    assert "Traceback" not in stderr
