"""No poison message: a message the broker refuses (too large, bad topic, not authorised) never blocks the
messages behind it, not even after a restart. Against a real mosquitto with `max_packet_size` and ACLs."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from streamseg.sinks.mqtt import MqttPublisher
from streamseg.sinks.outbox import Outbox
from tests.mqtt_broker import MOSQUITTO, Broker, Subscriber
from tests.sinks.schemas import validate

LIMIT = 2000  # bytes: mosquitto's max_packet_size in these tests


@pytest.fixture
def small_broker(tmp_path: Path):
    """mosquitto that refuses packets over LIMIT bytes (it disconnects the client that sends one)."""
    if not Path(MOSQUITTO).is_file():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto): the MQTT tests need a real broker")
    broker = Broker(tmp_path, f"allow_anonymous true\nmax_packet_size {LIMIT}\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def detections(frame: int, *, points: int = 400, boxes: int = 1) -> dict:
    """A detections payload whose polygon masks make it `points` x ~10 bytes bigger than without them."""
    return {
        "schema_version": 1,
        "camera": "front",
        "frame": frame,
        "pts": frame / 10,
        "capture_ts": 1_700_000_000.0,
        "publish_ts": 1_700_000_000.1,
        "width": 640,
        "height": 480,
        "detections": [
            {
                "track_id": k + 1,
                "class_id": 0,
                "label": "person",
                "score": 0.9,
                "box": [10.0, 20.0, 300.0, 400.0],
                "mask": {"format": "polygon", "points": [[i % 640, i % 480] for i in range(points)]},
            }
            for k in range(boxes)
        ],
    }


def event(seq: int) -> dict:
    return {"seq": seq}


def collect(sub: Subscriber, topic: str, n: int, timeout: float = 30.0) -> list[dict]:
    """The payloads of the first `n` messages on `topic` (raises TimeoutError when they do not come)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        out.append(sub.wait_for(topic, timeout=max(0.01, deadline - time.monotonic())).json())
    return out


def receive(sub: Subscriber, n: int, timeout: float = 30.0) -> list[tuple[str, dict]]:
    """The first `n` messages the subscriber gets, in order, as (last topic level, payload)."""
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n:
        msg = sub.get(timeout=max(0.01, deadline - time.monotonic()))
        out.append((msg.topic.rsplit("/", 1)[1], msg.json()))
    return out


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def test_a_message_over_an_unknown_broker_limit_is_set_aside_and_the_rest_flows(
    small_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MQTT 3.1.1 does not tell the client the broker's limit: mosquitto disconnects on the big message, and
    after a few reconnects with it first in line it is set aside, so the events behind it are delivered."""
    caplog.set_level(logging.INFO, logger="streamseg")
    pub = MqttPublisher(small_broker.host, small_broker.port, outbox=Outbox(tmp_path / "o.sqlite"))
    try:
        assert pub.wait_connected(10)
        with Subscriber(small_broker, "streamseg/front/+") as sub:
            pub.publish("front/detections", detections(1), kind="detections")  # ~7 KB: over the broker's limit
            for k in range(5):
                pub.publish("front/events", event(k), kind="events")
            assert [e["seq"] for e in collect(sub, "streamseg/front/events", 5)] == list(range(5))
            assert pub.wait_idle(10)
        metrics = pub.metrics()
    finally:
        pub.close(timeout=2)
    assert metrics["set_aside"] == 1 and metrics["outbox"]["queued"] == 0
    lines = warnings(caplog, "set aside")
    assert len(lines) == 1 and "streamseg/front/detections" in lines[0], lines


def test_a_poison_message_left_in_the_outbox_does_not_block_the_next_run(small_broker: Broker, tmp_path: Path) -> None:
    small_broker.stop()
    first = MqttPublisher(small_broker.host, small_broker.port, outbox=Outbox(tmp_path / "o.sqlite"))
    first.publish("front/detections", detections(1), kind="detections")
    for k in range(3):
        first.publish("front/events", event(k), kind="events")
    first.close(timeout=0.3)  # broker down: all four stay on disk, the big one first

    small_broker.start()
    with Subscriber(small_broker, "streamseg/front/+") as sub:
        second = MqttPublisher(small_broker.host, small_broker.port, outbox=Outbox(tmp_path / "o.sqlite"))
        try:
            second.publish("front/events", event(3), kind="events")
            assert [e["seq"] for e in collect(sub, "streamseg/front/events", 4)] == [0, 1, 2, 3]
            assert second.wait_idle(10)
        finally:
            second.close(timeout=2)


def test_max_message_bytes_degrades_detections_then_drops_what_still_does_not_fit(
    small_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With `max_message_bytes` at the broker's limit nothing ever reaches the broker too big: masks go first
    (marked `truncated`), a message still too big is dropped; both counted, logged once each."""
    caplog.set_level(logging.INFO, logger="streamseg")
    pub = MqttPublisher(
        small_broker.host, small_broker.port, outbox=Outbox(tmp_path / "o.sqlite"), max_message_bytes=LIMIT
    )
    try:
        assert pub.wait_connected(10)
        with Subscriber(small_broker, "streamseg/front/+") as sub:
            for frame in range(3):  # a burst: one warning, not three
                pub.publish("front/detections", detections(frame), kind="detections")
            pub.publish("front/detections", detections(3, boxes=40), kind="detections")  # too big even without masks
            pub.publish("front/events", event(0), kind="events")
            pub.publish("front/detections", detections(4, points=10), kind="detections")  # fits as it is
            messages = receive(sub, 5)
            assert pub.wait_idle(10)
        metrics = pub.metrics()
    finally:
        pub.close(timeout=2)
    assert [(level, d.get("frame", d.get("seq"))) for level, d in messages] == [
        ("detections", 0),
        ("detections", 1),
        ("detections", 2),
        ("events", 0),
        ("detections", 4),
    ]  # in order, frame 3 dropped
    got = [d for level, d in messages if level == "detections"]
    for d in got[:3]:
        validate("detections", d)
        assert d["truncated"] == ["detections.mask"]
        assert all("mask" not in det for det in d["detections"]) and len(d["detections"]) == 1
    assert "truncated" not in got[3] and "mask" in got[3]["detections"][0]
    assert (metrics["degraded"], metrics["too_large"], metrics["set_aside"]) == (3, 1, 0)
    assert metrics["max_message_bytes"] == LIMIT
    assert len(warnings(caplog, "sent without its masks")) == 1
    assert len(warnings(caplog, "dropped: over the")) == 1
    assert not warnings(caplog, "connection lost")  # nothing too big ever reached the broker


def test_mqtt5_takes_the_limit_from_the_broker(small_broker: Broker, tmp_path: Path, caplog) -> None:
    """MQTT 5: mosquitto says its Maximum Packet Size in CONNACK; streamseg uses it without any setting."""
    caplog.set_level(logging.INFO, logger="streamseg")
    pub = MqttPublisher(small_broker.host, small_broker.port, protocol="5", outbox=Outbox(tmp_path / "o.sqlite"))
    try:
        assert pub.wait_connected(10)
        with Subscriber(small_broker, "streamseg/front/+") as sub:
            pub.publish("front/detections", detections(0), kind="detections")
            pub.publish("front/events", event(0), kind="events")
            (_, got), second = receive(sub, 2)
            assert second == ("events", event(0))
        metrics = pub.metrics()
    finally:
        pub.close(timeout=2)
    assert metrics["max_message_bytes"] == LIMIT and metrics["degraded"] == 1
    assert got["truncated"] == ["detections.mask"] and got["frame"] == 0
    assert not warnings(caplog, "connection lost")


def test_oversized_events_lose_their_crossing_history_first(small_broker: Broker, tmp_path: Path) -> None:
    crossing = {"line": "middle", "direction": "in", "time": 1_700_000_000.5}
    state = {"label": "car", "crossings": [crossing] * 60}
    big = {"schema_version": 1, "type": "update", "event_id": "front-1", "before": state, "after": state}
    pub = MqttPublisher(
        small_broker.host, small_broker.port, outbox=Outbox(tmp_path / "o.sqlite"), max_message_bytes=LIMIT
    )
    try:
        assert pub.wait_connected(10)
        with Subscriber(small_broker, "streamseg/front/events") as sub:
            pub.publish("front/events", big, kind="events")
            got = collect(sub, "streamseg/front/events", 1)[0]
    finally:
        pub.close(timeout=2)
    assert got["truncated"] == ["before.crossings", "after.crossings"]
    assert got["before"]["crossings"] == got["after"]["crossings"] == [crossing]  # the latest one is kept


def test_an_invalid_topic_never_kills_the_sender(mosquitto: Broker, tmp_path: Path) -> None:
    """paho raises ValueError for a topic with a wildcard; the row is dropped, counted, the rest delivered."""
    pub = MqttPublisher(mosquitto.host, mosquitto.port, outbox=Outbox(tmp_path / "o.sqlite"))
    try:
        assert pub.wait_connected(10)
        with Subscriber(mosquitto, "streamseg/#") as sub:
            pub.publish("front+/events", event(0), kind="events")
            pub.publish("front/events", event(1), kind="events")
            assert collect(sub, "streamseg/front/events", 1, timeout=10) == [event(1)]
        assert pub.wait_idle(5)
        assert pub.metrics()["rejected"] == 1
    finally:
        pub.close(timeout=2)


def test_a_puback_with_a_failure_reason_is_counted_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MQTT 5: mosquitto answers a publish its ACL denies with PUBACK 0x87 (not authorised)."""
    if not Path(MOSQUITTO).is_file():
        pytest.skip("mosquitto is not installed")
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite streamseg/available\ntopic readwrite streamseg/front/#\ntopic read streamseg/#\n")
    root = "user root\n" if os.geteuid() == 0 else ""  # root: mosquitto keeps the rights to read tmp_path
    broker = Broker(tmp_path, f"allow_anonymous true\nacl_file {acl}\n{root}")
    broker.start()
    caplog.set_level(logging.INFO, logger="streamseg")
    pub = MqttPublisher(broker.host, broker.port, protocol="5", outbox=Outbox(tmp_path / "o.sqlite"))
    try:
        assert pub.wait_connected(10)
        with Subscriber(broker, "streamseg/#") as sub:
            for k in range(3):
                pub.publish("back/events", event(k), kind="events")  # denied by the ACL
            pub.publish("front/events", event(9), kind="events")
            assert collect(sub, "streamseg/front/events", 1) == [event(9)]
            assert pub.wait_idle(10)
        metrics = pub.metrics()
    finally:
        pub.close(timeout=2)
        broker.stop()
    assert metrics["rejected"] == 3 and metrics["outbox"]["queued"] == 0 and metrics["outbox"]["acked"] == 1
    lines = warnings(caplog, "refused")
    assert len(lines) == 1 and "Not authorized" in lines[0] and "streamseg/back/events" in lines[0], lines


def test_what_was_lost_while_the_broker_was_down_is_in_the_summary(mosquitto: Broker, tmp_path: Path) -> None:
    mosquitto.stop()
    pub = MqttPublisher(mosquitto.host, mosquitto.port, outbox=Outbox(tmp_path / "o.sqlite", max_messages=100))
    for k in range(130):
        pub.publish("front/events", event(k), kind="events")
    pub.stats({"ts": 1.0, "cameras": {}})  # QoS 0 while down: lost
    pub.close(timeout=0.3)
    summary = pub.summary()
    assert "30 events dropped (outbox full)" in summary
    assert "1 dropped from the memory queue" in summary
    assert "100 left in the outbox" in summary and str(tmp_path / "o.sqlite") in summary
    assert json.dumps(pub.metrics())  # still readable after close
