"""`streamseg run` on the real video with zones, a line and snapshots, read back over MQTT and by `streamseg tail`;
and a broker outage in the middle of a real run: everything produced meanwhile arrives afterwards, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from tests.mqtt_broker import Subscriber, mosquitto  # noqa: F401 - the fixture
from tests.sinks.schemas import validate

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def write_config(tmp_path: Path, broker, seg_model: Path, bikes_mp4: Path, extra: str = "") -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        f"""
mqtt: {{host: {broker.host}, port: {broker.port}, topic_prefix: z, outbox: {{path: outbox.sqlite}}}}
stats_interval: 1
defaults:
  model: {{path: {seg_model}, threads: 2}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}}}
    fps: 10
    outputs: {{jsonl: {{path: out.jsonl}}}}
{extra}"""
    )
    return path


ZONES = """    zones:
      road: {points: [[0, 130], [640, 130], [640, 272], [0, 272]], min_overlap: 0.3}
    lines:
      middle: {start: [320, 0], end: [320, 272], anchor: centroid}
    snapshots: {enabled: true, crop: true, quality: 70}
"""


def test_zones_lines_snapshots_and_tail_on_the_real_video(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    seg_model: Path,
    bikes_mp4: Path,
) -> None:
    path = write_config(tmp_path, mosquitto, seg_model, bikes_mp4, ZONES)
    tail = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "tail", "--config", str(path), "--camera", "bikes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    with Subscriber(mosquitto, "z/#") as sub:
        time.sleep(1.0)  # tail subscribes
        proc = subprocess.run(
            [sys.executable, "-m", "streamseg", "run", str(path)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        messages = sub.drain(quiet=1.0)
    tail.terminate()
    tail_out, _ = tail.communicate(timeout=10)

    by_topic: dict[str, list] = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(m)
    events = [m.json() for m in by_topic["z/bikes/events"]]
    for e in events:
        validate("events", e)
    for m in by_topic["z/bikes/detections"]:
        validate("detections", m.json())
    for m in by_topic["z/bikes/status"]:
        validate("status", m.json())
    for m in by_topic["z/stats"]:
        validate("stats", m.json())
    validate("available", by_topic["z/available"][0].text)

    # zones: tracks entering the road carry it in entered_zones, and counts per zone and label are retained
    entered = [e for e in events if "road" in e["after"]["entered_zones"]]
    assert len({e["track_id"] for e in entered}) >= 3
    assert any(e["type"] == "new" and e["zones"] == ["road"] for e in events)
    zone_counts = {t: ms for t, ms in by_topic.items() if t.startswith("z/bikes/zones/road/")}
    assert "z/bikes/zones/road/car" in zone_counts
    for ms in zone_counts.values():
        for m in ms:
            validate("count", m.json())
        assert ms[-1].json() == 0  # the camera ended: nothing left in the zone

    # the line: counted crossings with a direction, in the retained totals and in the events
    totals = [m.json() for m in by_topic["z/bikes/lines/middle"]]
    for t in totals:
        validate("line", t)
    assert totals[-1]["in"] + totals[-1]["out"] > 0
    crossings = [c for e in events if e["type"] == "end" for c in e["after"]["crossings"]]
    assert len(crossings) == totals[-1]["in"] + totals[-1]["out"]
    assert Counter(c["direction"] for c in crossings) == {k: totals[-1][k] for k in ("in", "out") if totals[-1][k]}

    # a snapshot per new event, a JPEG crop of the frame
    snaps = by_topic["z/bikes/snapshot"]
    assert len(snaps) == sum(e["type"] == "new" for e in events)
    image = cv2.imdecode(np.frombuffer(snaps[0].payload, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] <= 272 and image.shape[1] <= 640

    # streamseg tail printed one line per event: camera, type, track, label, zones
    lines = tail_out.splitlines()
    assert len(lines) == len(events), tail_out
    first = events[0]
    assert f"bikes  {first['type']:<6}  #{first['track_id']:<4}  {first['label']:<10}" in lines[0]
    assert any("zones=road" in line for line in lines) and any("crossed=middle:" in line for line in lines)


def test_a_broker_outage_mid_run_loses_nothing(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    seg_model: Path,
    bikes_mp4: Path,
) -> None:
    path = write_config(tmp_path, mosquitto, seg_model, bikes_mp4)
    received = []
    with Subscriber(mosquitto, "z/bikes/detections", "z/bikes/events") as before:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamseg", "run", str(path)],
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        while not any(m.topic == "z/bikes/detections" for m in received):  # the camera is streaming
            received.append(before.get(timeout=120))
        mosquitto.stop()
        received += before.drain(0.3)
    time.sleep(5)  # the camera goes on: its messages wait in the outbox
    mosquitto.start()
    with Subscriber(mosquitto, "z/bikes/detections", "z/bikes/events") as after:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        received += after.drain(quiet=1.0)

    # the JSON-lines file holds everything the camera produced: MQTT must have all of it, in the same order
    produced = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    key = {"detections": lambda o: ("d", o["frame"]), "events": lambda o: ("e", o["event_id"], o["type"], o["ts"])}
    want = [key[o["topic"]](o) for o in produced]
    got = [key[m.topic.rsplit("/", 1)[1]](m.json()) for m in received]
    duplicates = len(got) - len(set(got))
    print(f"real run outage: {len(want)} produced, {len(set(got))} delivered, {duplicates} duplicates")
    missing = [w for w in want if w not in set(got)]
    assert not missing, (missing, stderr[-3000:])
    assert list(dict.fromkeys(got)) == want
    assert "connection lost" in stderr and "Traceback" not in stderr
