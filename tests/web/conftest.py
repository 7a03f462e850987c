"""One real daemon for the HTTP tests: bikes.mp4 looped in real time and a live RTSP camera (GStreamer's server),
the fast real model, the HTTP server with token auth on a free port."""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.mqtt_broker import free_port
from tests.rtsp import RtspServer, gst_rtsp_available
from tests.service import InProcess

CAMERA_PASSWORD = "cam-pw-s3cr3t"  # in the RTSP camera's URL: never in an answer


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    token: str
    daemon: object  # streamseg.daemon.Daemon
    rtsp: RtspServer
    config: Path
    write_config: object  # (bikes_conf=0.25, live_fps=10) -> None: the config with other values of these

    def get(self, path: str, *, token: str | None = "", timeout: float = 10) -> tuple[int, bytes, dict]:
        """(status, body, headers); `token` None sends no Authorization header, "" the right token."""
        token = self.token if token == "" else token
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def config_text(
    model: Path, bikes: Path, rtsp_url: str, port: int, token: str, bikes_conf: float = 0.25, live_fps: float = 10
) -> str:
    return f"""
http: {{port: {port}, auth: {{token: "{token}"}}, live_fps: {live_fps}}}
defaults:
  model: {{path: {model}, threads: 1}}
cameras:
  bikes:
    source: {{url: {bikes}, loop: true, realtime: true}}
    model: {{conf: {bikes_conf}}}
    fps: 10
    zones:
      road: {{points: [[0, 130], [640, 130], [640, 272], [0, 272]], min_overlap: 0.3}}
    lines:
      middle: {{start: [320, 0], end: [320, 272], anchor: centroid}}
  door:
    source: {{url: "{rtsp_url}", reconnect: {{initial: 0.5, max: 1}}, stall_timeout: 3}}
    fps: 5
    tracker: {{type: none}}
"""


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    model, bikes = SHARED / "models" / "yolov8n-seg-320.onnx", SHARED / "media" / "bikes.mp4"
    if not (model.is_file() and bikes.is_file()):
        pytest.skip(f"{model} or {bikes} is absent: set STREAMSEG_SHARED to the folder holding models/ and media/")
    if not gst_rtsp_available():
        pytest.skip("GStreamer's RTSP server is not installed for /usr/bin/python3 (run tools/system-deps.sh)")
    rtsp = RtspServer()
    rtsp.start()
    token = "tok-" + secrets.token_hex(8)
    config = tmp_path_factory.mktemp("http") / "cameras.yaml"
    port = free_port()

    def write_config(bikes_conf: float = 0.25, live_fps: float = 10) -> None:
        url = rtsp.url("test", userinfo=f"admin:{CAMERA_PASSWORD}")
        config.write_text(config_text(model, bikes, url, port, token, bikes_conf, live_fps))

    write_config()
    running = InProcess(config)
    try:
        with running:
            daemon = running.daemon
            assert daemon.http is not None, "the HTTP server did not start"
            served = Served(daemon.http.url, token, daemon, rtsp, config, write_config)
            served.reload = running.reload  # type: ignore[attr-defined]
            wait_until(
                lambda: all(c.state == "streaming" and c.stats.frames >= 3 for c in daemon.cameras.values()),
                60,
                "both cameras to stream",
            )
            yield served
    finally:
        rtsp.stop()
