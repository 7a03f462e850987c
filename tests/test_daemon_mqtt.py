"""`streamseg run` end to end with a real mosquitto: the MQTT contract of DESIGN.md on the real model and video."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.mqtt_broker import Subscriber, mosquitto  # noqa: F401 - the fixture
from tests.sinks.schemas import validate


def config(tmp_path: Path, broker, seg_model: Path, source: Path, **extra: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        f"""
mqtt: {{host: {broker.host}, port: {broker.port}, topic_prefix: test}}
stats_interval: 1
defaults:
  model: {{path: {seg_model}}}
cameras:
  bikes:
    source: {{url: {source}, loop: {extra.get("loop", "false")}}}
    fps: 5
    mask_format: rle
"""
    )
    return path


def test_run_publishes_the_contract(tmp_path: Path, mosquitto, seg_model: Path, bikes_mp4: Path) -> None:  # noqa: F811
    with Subscriber(mosquitto, "test/#") as sub:
        proc = subprocess.run(
            [sys.executable, "-m", "streamseg", "run", str(config(tmp_path, mosquitto, seg_model, bikes_mp4))],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        messages = sub.drain(quiet=1.0)
    by_topic: dict[str, list] = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(m)

    frames = [m.json() for m in by_topic["test/bikes/detections"]]
    assert 49 <= len(frames) <= 51  # 10 s at fps 5, every one delivered
    assert [f["frame"] for f in frames] == sorted(f["frame"] for f in frames)
    for f in frames:
        validate("detections", f)
        assert f["camera"] == "bikes" and (f["width"], f["height"]) == (640, 272)
        assert f["publish_ts"] >= f["capture_ts"]
        assert all(d["mask"]["format"] == "rle" and d["mask"]["size"] == [272, 640] for d in f["detections"])
    assert sum(len(f["detections"]) for f in frames) > 50

    events = [m.json() for m in by_topic["test/bikes/events"]]
    for e in events:
        validate("events", e)
    kinds = [e["type"] for e in events]
    assert kinds.count("new") == kinds.count("end") > 3

    states = [m.json()["state"] for m in by_topic["test/bikes/status"]]
    assert states[0] == "starting" and "streaming" in states and states[-1] == "stopped"
    for m in by_topic["test/bikes/status"]:
        validate("status", m.json())
    assert [m.text for m in by_topic["test/available"]] == ["online", "offline"]
    assert by_topic["test/bikes/car"] and by_topic["test/bikes/car"][-1].text == "0"  # ended: nothing in view
    for m in by_topic["test/stats"]:
        validate("stats", m.json())

    # retained state a late subscriber sees: offline, stopped
    with Subscriber(mosquitto, "test/available", "test/bikes/status") as late:
        retained = {m.topic: m for m in late.drain(quiet=0.5)}
    assert retained["test/available"].text == "offline" and retained["test/available"].retain
    assert retained["test/bikes/status"].json()["state"] == "stopped"


def test_sigterm_drains_and_exits_0(tmp_path: Path, mosquitto, seg_model: Path, bikes_mp4: Path) -> None:  # noqa: F811
    path = config(tmp_path, mosquitto, seg_model, bikes_mp4, loop="true")  # never ends by itself
    with Subscriber(mosquitto, "test/#") as sub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamseg", "run", str(path)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        sub.wait_for("test/bikes/status", timeout=60, payload=None)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sub.get(timeout=60).topic == "test/bikes/detections":
                break
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        rest = sub.drain(quiet=1.0)
    assert any(m.topic == "test/available" and m.text == "offline" for m in rest)
    assert any(m.topic == "test/bikes/status" and m.json()["state"] == "stopped" for m in rest)


def test_a_failed_camera_stays_failed_with_its_reason_after_shutdown(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    seg_model: Path,
    bikes_mp4: Path,
) -> None:
    path = config(tmp_path, mosquitto, seg_model, bikes_mp4)
    path.write_text(
        path.read_text().replace("fps: 5", "fps: 1") + f"  gone:\n    source: {{url: {tmp_path}/nope.mp4}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr  # a camera failed
    with Subscriber(mosquitto, "test/+/status") as late:
        retained = {m.topic: m.json() for m in late.drain(quiet=0.5) if m.retain}
    assert retained["test/bikes/status"]["state"] == "stopped"
    gone = retained["test/gone/status"]
    assert gone["state"] == "failed" and "nope.mp4" in gone["error"], gone
    validate("status", gone)


def test_what_mqtt_lost_while_the_broker_was_down_is_in_the_final_summary(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    seg_model: Path,
    bikes_mp4: Path,
) -> None:
    path = config(tmp_path, mosquitto, seg_model, bikes_mp4, loop="true")
    path.write_text(path.read_text().replace("topic_prefix: test}", "topic_prefix: test, outbox: {path: o.sqlite}}"))
    with Subscriber(mosquitto, "test/bikes/detections") as sub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamseg", "run", str(path)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        sub.wait_for("test/bikes/detections", timeout=60)
    mosquitto.stop()  # the final stats and the last detections cannot go out now
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    summary = [line for line in stderr.splitlines() if "summary mqtt:" in line]
    assert len(summary) == 1, stderr
    assert "dropped from the memory queue" in summary[0]  # the final stats (QoS 0) at least
    assert f"left in the outbox {tmp_path / 'o.sqlite'} for the next start" in summary[0], summary[0]
