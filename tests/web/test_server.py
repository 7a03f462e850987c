"""The HTTP server of a real daemon: every endpoint, /healthz through a camera outage, a reload."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from tests.mqtt_broker import free_port
from tests.service import InProcess
from tests.web.conftest import CAMERA_PASSWORD, Served, wait_until


def jpeg(body: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def test_status_page_api_and_metrics(served: Served) -> None:
    status, body, headers = served.get("/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8" and b"/static/app.js" in body
    assert served.get("/api/cameras", token=None)[0] == 401

    status, body, _ = served.get("/api/cameras")
    assert status == 200
    api = json.loads(body)
    bikes, door = api["cameras"]["bikes"], api["cameras"]["door"]
    assert bikes["state"] == door["state"] == "streaming"
    assert bikes["frames"] > 0 and bikes["fps"] > 0 and bikes["source_fps"] == 25.0
    assert bikes["zones"] == ["road"] and bikes["lines"] == ["middle"]
    assert door["source"] == f"rtsp://admin:***@127.0.0.1:{served.rtsp.port}/test" and CAMERA_PASSWORD not in str(body)
    for key in ("dropped", "reconnects", "latency_ms", "inference_ms"):
        assert isinstance(bikes[key], int | float), key
    live = bikes["live"]
    assert live["size"] == [640, 272] and set(live["zones"]) == {"road"} and set(live["lines"]) == {"middle"}
    assert live["lines"]["middle"].keys() == {"in", "out", "labels"}
    wait_until(lambda: json.loads(served.get("/api/cameras")[1])["cameras"]["bikes"]["live"]["events"], 30, "events")
    wait_until(lambda: json.loads(served.get("/api/cameras")[1])["cameras"]["bikes"]["live"]["counts"], 30, "counts")
    event = json.loads(served.get("/api/cameras")[1])["cameras"]["bikes"]["live"]["events"][0]
    assert event["camera"] == "bikes" and event["type"] in ("new", "update", "end")
    # fps in: the decode rate, measured between two requests (the file is read at 25 fps, processed at 10)
    time.sleep(1.5)
    fps_in = json.loads(served.get("/api/cameras")[1])["cameras"]["bikes"]["fps_in"]
    assert 15 < fps_in < 35, fps_in

    status, body, headers = served.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert 'streamseg_camera_state{camera="door",state="streaming"} 1.0' in text
    assert 'streamseg_camera_frames_total{camera="bikes"}' in text
    assert 'streamseg_sink_written_total{camera="bikes",sink="live"}' in text


def test_snapshot_is_the_latest_annotated_frame(served: Served) -> None:
    status, body, headers = served.get("/cameras/bikes/snapshot.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    first = jpeg(body)
    assert first.shape == (272, 640, 3)
    # the road zone's outline and the middle line are drawn in the overlay colour (#ffd400: BGR 0, 212, 255)
    # (drawn last, over the masks): in each row, one of the pixels around x = 320 has that colour
    near = np.abs(first[30:125, 317:324].astype(int) - [0, 212, 255]).sum(axis=2).min(axis=1)
    assert (near < 90).mean() > 0.9, near
    time.sleep(0.5)
    status, body, headers2 = served.get("/cameras/bikes/snapshot.jpg")
    assert int(headers2["X-Frame"]) > int(headers["X-Frame"])
    assert np.abs(jpeg(body).astype(int) - first).mean() > 1  # the video moved on
    assert jpeg(served.get("/cameras/door/snapshot.jpg")[1]).shape == (240, 320, 3)
    status, body, _ = served.get("/cameras/nope/snapshot.jpg")
    assert status == 404 and json.loads(body) == {"error": "no camera 'nope' is running"}


def test_mjpeg_streams_new_frames_at_most_live_fps(served: Served) -> None:
    request = urllib.request.Request(
        served.url + "/cameras/bikes/mjpeg", headers={"Authorization": f"Bearer {served.token}"}
    )
    live = next(s for s in served.daemon.cameras["bikes"].sinks if s.kind == "live")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=streamseg-frame"
        t0 = time.monotonic()
        data = b""
        while data.count(b"--streamseg-frame") < 13:
            data += response.read1(65536)
            assert time.monotonic() - t0 < 20, "fewer than 12 parts in 20 s"
        spent = time.monotonic() - t0
        assert live.viewers == 1
    parts = data.split(b"--streamseg-frame\r\n")[1:13]
    images = []
    for part in parts:
        head, _, rest = part.partition(b"\r\n\r\n")
        assert b"Content-Type: image/jpeg" in head
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        images.append(jpeg(rest[:length]))
    assert spent > 0.9, f"12 parts in {spent:.2f} s: more than live_fps (10)"
    assert np.abs(images[-1].astype(int) - images[0]).mean() > 1
    wait_until(lambda: live.viewers == 0, 5, "the viewer to be counted as gone")


def test_healthz_follows_a_camera_outage(served: Served) -> None:
    status, body, _ = served.get("/healthz")
    assert status == 200 and json.loads(body)["healthy"] is True
    assert served.get("/healthz", token=None)[0] == 401
    served.rtsp.stop()
    try:
        wait_until(lambda: served.get("/healthz")[0] == 503, 30, "/healthz to say 503 once the RTSP server is gone")
        body = json.loads(served.get("/healthz")[1])
        assert body["healthy"] is False
        assert body["cameras"]["door"]["state"] == "reconnecting" and body["cameras"]["door"]["healthy"] is False
        assert body["cameras"]["door"]["alive"] is True  # waiting for a camera is not hanging
        assert body["cameras"]["bikes"]["healthy"] is True  # the other camera is fine
        api = served.get("/api/cameras")[1]
        error = json.loads(api)["cameras"]["door"]["error"]
        assert error and "admin:***@" in error and CAMERA_PASSWORD not in str(api), error
    finally:
        served.rtsp.start()
    wait_until(lambda: served.get("/healthz")[0] == 200, 60, "/healthz to say 200 once the RTSP server is back")


def test_the_server_survives_a_reload_that_restarts_one_camera(served: Served) -> None:
    daemon = served.daemon
    server, door, bikes = daemon.http, daemon.cameras["door"], daemon.cameras["bikes"]
    served.write_config(bikes_conf=0.3)
    served.reload()
    assert daemon.cameras["bikes"] is not bikes and daemon.cameras["door"] is door  # only bikes restarted
    assert daemon.http is server  # http: unchanged, the same server goes on
    wait_until(lambda: served.get("/cameras/bikes/snapshot.jpg")[0] == 200, 30, "a snapshot from the new camera")
    status, body, _ = served.get("/api/cameras")
    assert status == 200 and set(json.loads(body)["cameras"]) == {"bikes", "door"}

    # http: changed: the server restarts on the same port with the new settings, no camera restarts
    bikes = daemon.cameras["bikes"]
    served.write_config(bikes_conf=0.3, live_fps=5)
    served.reload()
    assert daemon.http is not server and daemon.http.cfg.live_fps == 5 and daemon.http.url == served.url
    assert daemon.cameras["bikes"] is bikes and daemon.cameras["door"] is door
    status, body, _ = served.get("/api/cameras")
    assert status == 200 and json.loads(body)["live_fps"] == 5
    assert served.get("/cameras/door/snapshot.jpg")[0] == 200
    served.write_config()
    served.reload()


def test_a_viewer_that_stops_reading_never_holds_up_a_file_camera(
    tmp_path: Path, fast_seg_model: Path, bikes_mp4: Path
) -> None:
    """A file camera's outputs get every frame (its JSON lines wait for inference); a viewer that opened the MJPEG
    stream and stopped reading, and one hammering snapshots, change nothing: the run ends with every frame."""
    port = free_port()
    config = tmp_path / "cameras.yaml"
    config.write_text(f"""
http: {{port: {port}, live_fps: 60}}
defaults:
  model: {{path: {fast_seg_model}, threads: 1}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}}}
    fps: 10
    outputs:
      jsonl: {{path: out.jsonl}}
""")
    running = InProcess(config)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/cameras/bikes/snapshot.jpg", timeout=5).read()
            except OSError:
                time.sleep(0.01)

    with running:
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /cameras/bikes/mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads a byte
        threading.Thread(target=hammer, daemon=True).start()
        wait_until(lambda: running.daemon.cameras["bikes"].done, 120, "the file camera to end")
        stop.set()
        camera = running.daemon.cameras["bikes"]
        live = next(s for s in camera.sinks if s.kind == "live")
        assert live.viewers == 1 and live.encoded > 5  # it was watched all along
        stalled.close()
    assert camera.stats.frames == 100 and camera.state == "stopped"  # 10 s at fps 10: every frame
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["topic"] == "detections" for line in lines) == 100
