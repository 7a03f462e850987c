"""MqttPublisher and MqttSink against a real mosquitto, read back by a real subscriber."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import numpy as np
import pytest

from streamseg.sinks.mqtt import MqttPublisher, MqttSink
from tests.mqtt_broker import Broker, Subscriber
from tests.sinks.helpers import FakeEvent, boxes_only, detections_from_dense, frame_result
from tests.sinks.schemas import validate


@pytest.fixture
def publisher(mosquitto: Broker) -> Iterator[MqttPublisher]:
    pub = MqttPublisher(mosquitto.host, mosquitto.port, client_id="streamseg-test")
    assert pub.wait_connected(10)
    yield pub
    pub.close(timeout=2)


def run_sink(sink: MqttSink, results) -> None:
    sink.start()
    for result in results:
        assert sink.submit(result)
    sink.stop()
    assert sink.error is None


def test_available_online_is_retained_for_late_subscribers(mosquitto: Broker, publisher: MqttPublisher) -> None:
    assert publisher.wait_idle(5)
    with Subscriber(mosquitto, "streamseg/available") as sub:
        msg = sub.wait_for("streamseg/available")
    assert (msg.text, msg.retain) == ("online", True)
    validate("available", msg.text)


def test_detections_follow_the_schema_and_events_arrive_in_order(mosquitto: Broker, publisher: MqttPublisher) -> None:
    masks = np.zeros((2, 48, 64), dtype=bool)
    masks[0, 5:20, 3:30] = True
    masks[1, 25:48, 40:64] = True  # touches the image edges
    results = []
    for frame in range(5):
        det = detections_from_dense(masks, ["person", "car"], tracker_id=[1, -1 if frame < 2 else 2])
        events = [FakeEvent("new" if frame == 0 else "update", f"e{frame}-{k}", track_id=1) for k in range(3)]
        results.append(frame_result(det, frame=frame, events=events))

    with Subscriber(mosquitto, "streamseg/front/detections", "streamseg/front/events") as sub:
        run_sink(MqttSink("front", publisher, mask_format="rle"), results)
        assert publisher.wait_idle(5)
        messages = sub.drain()

    detections = [m.json() for m in messages if m.topic.endswith("/detections")]
    events = [m.json() for m in messages if m.topic.endswith("/events")]
    assert [d["frame"] for d in detections] == list(range(5))
    for payload in detections:
        validate("detections", payload)
        assert payload["camera"] == "front"
        assert payload["publish_ts"] >= payload["capture_ts"]
        assert [d["mask"]["format"] for d in payload["detections"]] == ["rle", "rle"]
    assert detections[0]["detections"][1]["track_id"] is None
    assert detections[4]["detections"][1]["track_id"] == 2
    assert [e["event_id"] for e in events] == [f"e{f}-{k}" for f in range(5) for k in range(3)]
    for event in events:
        validate("events", event)
        assert event["schema_version"] == 1
    assert not any(m.retain for m in messages)


def test_detections_can_be_switched_off(mosquitto: Broker, publisher: MqttPublisher) -> None:
    with Subscriber(mosquitto, "streamseg/#") as sub:
        sub.drain(0.2)
        ev = FakeEvent("new", "only", track_id=3)
        run_sink(MqttSink("front", publisher, detections=False), [frame_result(boxes_only([]), events=[ev])])
        assert publisher.wait_idle(5)
        topics = [m.topic for m in sub.drain()]
    assert topics == ["streamseg/front/events"]


def test_label_counts_are_retained_change_only_and_go_to_zero(mosquitto: Broker, publisher: MqttPublisher) -> None:
    frames = [
        boxes_only(["person", "person", "car"], tracker_id=[1, 2, 3]),
        boxes_only(["person", "person", "car"], tracker_id=[1, 2, 3]),  # unchanged: nothing published
        boxes_only(["person", "dog"], tracker_id=[1, -1]),  # car leaves; the dog is not confirmed yet
        boxes_only(["person", "dog"], tracker_id=[1, 4]),
    ]
    with Subscriber(mosquitto, "streamseg/front/+") as sub:
        sink = MqttSink("front", publisher, detections=False)
        sink.start()
        for i, det in enumerate(frames):
            sink.submit(frame_result(det, frame=i))
        deadline = time.monotonic() + 5
        while sink.written < len(frames) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert publisher.wait_idle(5)
        live = [(m.topic.rsplit("/", 1)[1], m.json()) for m in sub.drain()]
        assert live == [("car", 1), ("person", 2), ("car", 0), ("person", 1), ("dog", 1)]

        with Subscriber(mosquitto, "streamseg/front/+") as late:  # retained: a new subscriber sees the now
            retained = {m.topic.rsplit("/", 1)[1]: m.json() for m in late.drain() if m.retain}
        assert retained == {"person": 1, "car": 0, "dog": 1}
        for count in retained.values():
            validate("count", count)

        sink.stop()  # the camera stops: nothing of it is in view any more
        assert publisher.wait_idle(5)
        assert sorted((m.topic.rsplit("/", 1)[1], m.json()) for m in sub.drain()) == [("dog", 0), ("person", 0)]


def test_counts_without_tracking_count_every_detection(mosquitto: Broker, publisher: MqttPublisher) -> None:
    with Subscriber(mosquitto, "streamseg/front/+") as sub:
        run_sink(MqttSink("front", publisher, detections=False), [frame_result(boxes_only(["bus", "bus"]))])
        assert publisher.wait_idle(5)
        first = sub.wait_for("streamseg/front/bus")
    assert (first.json(), first.retain) == (2, False)  # live delivery; the broker keeps it retained


def test_status_is_retained_and_close_leaves_offline_and_stopped_but_failed_kept(mosquitto: Broker) -> None:
    pub = MqttPublisher(mosquitto.host, mosquitto.port)
    assert pub.wait_connected(10)
    pub.status("front", "starting")
    time.sleep(0.01)
    pub.status("front", "streaming", fps=9.876)
    pub.status("back", "failed", error="cannot open rtsp://cam/stream")
    assert pub.wait_idle(5)  # the broker holds `streaming` before anyone subscribes
    with Subscriber(mosquitto, "streamseg/front/status") as sub:
        first = sub.wait_for("streamseg/front/status")
        pub.status("front", "streaming", fps=10.0)  # same state: `since` does not move
        second = sub.wait_for("streamseg/front/status")
    for msg in (first, second):
        validate("status", msg.json())
    assert first.retain and first.json()["state"] == "streaming" and first.json()["fps"] == 9.88
    assert second.json()["since"] == first.json()["since"]
    assert second.json()["fps"] == 10.0

    pub.close(timeout=5)
    with Subscriber(mosquitto, "streamseg/#") as late:
        retained = {m.topic: m.text for m in late.drain() if m.retain}
    assert retained["streamseg/available"] == "offline"
    front, back = (json.loads(retained[f"streamseg/{camera}/status"]) for camera in ("front", "back"))
    for status in (front, back):
        validate("status", status)
    assert front["state"] == "stopped" and front["error"] is None
    # a failed camera keeps `failed` and the reason: `stopped` would hide why it is gone
    assert back["state"] == "failed" and back["error"] == "cannot open rtsp://cam/stream"


def test_broker_down_at_start_then_messages_flow(mosquitto: Broker, caplog: pytest.LogCaptureFixture) -> None:
    mosquitto.stop()
    caplog.set_level(logging.INFO, logger="streamseg")
    pub = MqttPublisher(mosquitto.host, mosquitto.port)  # must not raise
    try:
        time.sleep(1.5)  # two failed attempts (paho retries after 1 s, then 2 s)
        assert not pub.connected
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "cannot connect" in warnings[0].getMessage()

        pub.status("front", "starting")
        for k in range(5):
            assert pub.publish("front/events", {"event_id": k})  # QoS 1: queued in memory meanwhile

        mosquitto.start()  # paho's next attempt is about 1.5 s away: the subscriber is in first
        with Subscriber(mosquitto, "streamseg/#") as sub:
            assert pub.wait_connected(10)
            assert pub.wait_idle(5)
            messages = sub.drain()
        events = [m.json()["event_id"] for m in messages if m.topic == "streamseg/front/events"]
        assert events == list(range(5))
        assert ("streamseg/available", "online") in [(m.topic, m.text) for m in messages]
        assert any(r.levelno == logging.INFO and "connected" in r.getMessage() for r in caplog.records)
    finally:
        pub.close(timeout=2)


def test_outage_mid_stream_keeps_order_and_restores_retained_state(mosquitto: Broker) -> None:
    pub = MqttPublisher(mosquitto.host, mosquitto.port)
    try:
        assert pub.wait_connected(10)
        pub.status("front", "streaming", fps=5)
        assert pub.wait_idle(5)
        mosquitto.stop()  # no persistence: the retained status is forgotten
        deadline = time.monotonic() + 5
        while pub.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        for k in range(5):
            pub.publish("front/events", {"event_id": k})
        mosquitto.start()
        with Subscriber(mosquitto, "streamseg/#") as sub:
            assert pub.wait_connected(10)
            assert pub.wait_idle(5)
            messages = sub.drain()
        assert [m.json()["event_id"] for m in messages if m.topic == "streamseg/front/events"] == list(range(5))
        with Subscriber(mosquitto, "streamseg/#") as late:
            retained = {m.topic: m.text for m in late.drain() if m.retain}
        assert retained["streamseg/available"] == "online"
        assert '"state":"streaming"' in retained["streamseg/front/status"]
    finally:
        pub.close(timeout=2)


def test_credentials_never_reach_the_logs(mosquitto: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pub = MqttPublisher(mosquitto.host, mosquitto.port, username="alice", password="s3cr3t-pw")
    try:
        assert pub.wait_connected(10)  # the test broker is anonymous: it ignores the credentials
        pub.publish("x", "y")
        assert pub.wait_idle(5)
    finally:
        pub.close(timeout=2)
    assert caplog.records
    assert not any("s3cr3t-pw" in r.getMessage() or "alice" in r.getMessage() for r in caplog.records)


def test_close_is_bounded_when_the_broker_never_comes(mosquitto: Broker) -> None:
    mosquitto.stop()
    pub = MqttPublisher(mosquitto.host, mosquitto.port)
    pub.status("front", "streaming")
    t0 = time.monotonic()
    pub.close(timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert not pub.publish("front/events", {"late": True})  # after close: refused, not raised


def test_qos0_while_disconnected_is_counted_as_dropped(mosquitto: Broker) -> None:
    mosquitto.stop()
    pub = MqttPublisher(mosquitto.host, mosquitto.port)
    try:
        assert not pub.publish("stats", {"cameras": {}}, qos=0)
        assert pub.dropped == 1
    finally:
        pub.close(timeout=0.2)


def test_stats_are_published_not_retained(mosquitto: Broker, publisher: MqttPublisher) -> None:
    stats = {
        "ts": 1_700_000_000.5,
        "cameras": {
            "front": {
                "state": "streaming",
                "fps": 9.9,
                "frames": 120,
                "dropped": 0,
                "skipped": 3,
                "inference_ms": 41.2,
                "queues": {"ring": 1, "mqtt": 0},
                "sink_dropped": {"mqtt": 0},
            },
            "back": {"state": "failed", "error": "cannot open rtsp://cam/stream"},
        },
    }
    with Subscriber(mosquitto, "streamseg/stats") as sub:
        publisher.stats(stats)
        msg = sub.wait_for("streamseg/stats")
    assert not msg.retain
    losses = {"degraded": 0, "too_large": 0, "rejected": 0, "set_aside": 0}
    mqtt = {"connected": True, "dropped": 0, **losses, "max_message_bytes": 1_048_576, "outbox": None}
    assert msg.json() == {**stats, "mqtt": mqtt}
    validate("stats", msg.json())


def test_memory_queue_is_bounded_while_disconnected(mosquitto: Broker) -> None:
    mosquitto.stop()
    pub = MqttPublisher(mosquitto.host, mosquitto.port, max_queued=3)
    try:
        accepted = [pub.publish("front/events", {"event_id": k}) for k in range(5)]
        assert accepted == [True, True, True, False, False]
        assert pub.dropped == 2
    finally:
        pub.close(timeout=0.2)
