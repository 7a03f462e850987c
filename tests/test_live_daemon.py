"""Live cameras in the daemon: a camera that reboots, one that never answers, and the cameras beside them.

Real mosquitto, real GStreamer RTSP server, real model. Timings are printed (pytest -s), bounds are generous.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from streamseg.config import load_config
from streamseg.daemon import Daemon
from tests.mqtt_broker import Subscriber, free_port, mosquitto  # noqa: F401 - the fixture
from tests.rtsp import rtsp_server  # noqa: F401 - the fixture

PASSWORD = "s3cr3t-pw"


class Running:
    """A Daemon on a thread (no signal handlers), stopped on exit."""

    def __init__(self, tmp: Path, text: str) -> None:
        path = tmp / "cameras.yaml"
        path.write_text(text)
        self.daemon = Daemon(load_config(path), path)
        self.code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.daemon.run(handle_signals=False)

    def __enter__(self) -> Daemon:
        self._thread.start()
        assert self.daemon.started.wait(60), "the daemon did not start its cameras"
        return self.daemon

    def __exit__(self, *exc) -> None:
        self.daemon.stop()
        self._thread.join(90)
        assert not self._thread.is_alive(), "the daemon did not stop"


def wait_until(predicate, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - t0


def status_states(sub: Subscriber, topic: str) -> list[dict]:
    return [m.json() for m in sub.drain(quiet=0.5) if m.topic == topic]


def test_camera_reboot_reconnects_while_the_other_camera_keeps_going(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    rtsp_server,  # noqa: F811
    fast_seg_model: Path,
    carphone_mp4: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    metrics_port = free_port()
    url = rtsp_server.url("test", userinfo=f"admin:{PASSWORD}")
    text = f"""
mqtt: {{host: {mosquitto.host}, port: {mosquitto.port}, topic_prefix: t}}
metrics_port: {metrics_port}
defaults:
  model: {{path: {fast_seg_model}, threads: 1}}
  tracker: {{type: none}}
cameras:
  live:
    source: {{url: "{url}", reconnect: {{initial: 0.5, max: 2}}, stall_timeout: 5}}
    fps: 5
  file:
    source: {{url: {carphone_mp4}, loop: true}}
    fps: 5
"""
    with Subscriber(mosquitto, "t/+/status") as sub, Running(tmp_path, text) as daemon:
        live, file = daemon.cameras["live"], daemon.cameras["file"]
        wait_until(lambda: live.stats.frames >= 5 and file.stats.frames >= 5, 60, "both cameras to process frames")
        assert live.state == "streaming"

        rtsp_server.stop()
        down = time.monotonic()
        wait_until(lambda: live.state == "reconnecting", 30, "the live camera to notice the outage")
        file_before = file.stats.frames
        time.sleep(3)  # the outage: several failed attempts
        # The healthy camera keeps going through the outage (a bound, not a rate: a loaded machine is slow).
        wait_until(lambda: file.stats.frames > file_before + 5, 30, "the healthy camera to go on during the outage")
        assert live.state == "reconnecting", "the server is still down"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert 'streamseg_camera_state{camera="live",state="reconnecting"} 1.0' in metrics
        assert 'streamseg_camera_state{camera="file",state="streaming"} 1.0' in metrics

        decoded = live.source.frames_decoded
        rtsp_server.start()
        recovery = wait_until(lambda: live.source.frames_decoded > decoded, 60, "a frame after the restart")
        wait_until(lambda: live.state == "streaming", 10, "streaming again")
        processed = live.stats.frames
        wait_until(lambda: live.stats.frames > processed + 3, 30, "processing again")
        print(
            f"\noutage {time.monotonic() - down - recovery:.1f} s; recovery (server back -> first new frame) "
            f"{recovery:.2f} s; reconnect attempts {live.reconnects}"
        )
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        reconnects = [
            ln for ln in metrics.splitlines() if ln.startswith('streamseg_camera_reconnects_total{camera="live"')
        ]
        assert reconnects and float(reconnects[0].split()[-1]) >= 1
        assert 'streamseg_camera_frames_total{camera="file"}' in metrics
        assert live.reconnects >= 1

        statuses = status_states(sub, "t/live/status")
    states = [s["state"] for s in statuses]
    i = states.index("reconnecting")
    assert states[:1] == ["starting"] and "streaming" in states[:i] and "streaming" in states[i:], states
    assert states.count("reconnecting") == 1  # once per change, not once per attempt
    reconnecting = statuses[i]
    assert reconnecting["error"] and PASSWORD not in reconnecting["error"] and "admin:***@" in reconnecting["error"]
    assert all(PASSWORD not in (s["error"] or "") for s in statuses)
    assert PASSWORD not in caplog.text and "reconnecting" in caplog.text
    assert len([r for r in caplog.records if "reconnecting" in r.getMessage() and r.name == "streamseg.pipeline"]) == 1
    assert daemon.cameras["file"].state == "stopped" and daemon.cameras["live"].state == "stopped"


def test_cameras_that_never_answer_do_not_hold_up_the_others(
    tmp_path: Path,
    rtsp_server,  # noqa: F811
    fast_seg_model: Path,
    carphone_mp4: Path,
) -> None:
    closed = free_port()  # nothing listens there: connection refused
    text = f"""
defaults:
  model: {{path: {fast_seg_model}, threads: 1}}
  tracker: {{type: none}}
cameras:
  refused:
    source: {{url: "rtsp://u:{PASSWORD}@127.0.0.1:{closed}/x", reconnect: {{initial: 0.2, max: 0.4, max_retries: 3}}}}
  nopath:
    source: {{url: "{rtsp_server.url("does-not-exist")}", reconnect: {{initial: 0.2, max: 1}}}}
  good:
    source: {{url: {carphone_mp4}}}
    fps: 5
    outputs: {{jsonl: {{path: good.jsonl}}}}
"""
    with Running(tmp_path, text) as daemon:
        good = daemon.cameras["good"]
        wait_until(lambda: good.done, 120, "the file camera to finish")
        wait_until(lambda: daemon.cameras["refused"].done, 60, "the refused camera to give up")
        assert daemon.cameras["nopath"].state == "reconnecting"  # retries forever by default
        assert daemon.cameras["nopath"].reconnects >= 2
    assert good.state == "stopped" and good.error is None
    assert 19 <= len((tmp_path / "good.jsonl").read_text().splitlines()) <= 21  # 4 s at 5 fps, nothing lost
    refused = daemon.cameras["refused"]
    assert refused.state == "failed" and refused.reconnects == 3
    assert "gave up after 3 retries" in refused.error and PASSWORD not in refused.error
    assert daemon.cameras["nopath"].state == "stopped"  # stopping ends the retries at once
