"""Home Assistant MQTT discovery from the daemon on the real model, read back from a real mosquitto: every config
valid for its entity type, every state it points at there (retained) and readable through its template (rendered
with Jinja2, Home Assistant's template engine), all sent again when Home Assistant announces `online`, and
cleared for a camera a reload removed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jinja2
import pytest

from streamseg.config.loader import parse_config
from streamseg.homeassistant import entity_labels
from tests.homeassistant import problems
from tests.mqtt_broker import Subscriber, mosquitto  # noqa: F401 - the fixture
from tests.service import InProcess

STREET = """  street:
    source: {{url: {bikes}, loop: true}}
    zones: {{road: {{points: [[0, 130], [640, 130], [640, 272], [0, 272]], labels: [car, person]}}}}
    lines: {{middle: {{start: [320, 0], end: [320, 272]}}}}
    snapshots: {{enabled: true}}
"""
YARD = """  yard:
    source: {{url: {carphone}, loop: true}}
    model: {{classes: [person]}}
"""


def write(path: Path, broker, model: Path, cameras: str) -> None:
    path.write_text(
        f"""
mqtt: {{host: {broker.host}, port: {broker.port}, topic_prefix: site/cams}}
homeassistant: {{enabled: true}}
defaults:
  model: {{path: {model}}}
  fps: 5
cameras:
{cameras}"""
    )


def collect(sub: Subscriber, want, timeout: float, what: str, found: dict | None = None) -> dict[str, bytes]:
    """Messages by topic (the latest of each), added to `found`, until `want(found)`."""
    found = {} if found is None else found
    deadline = time.monotonic() + timeout
    while not want(found):
        assert time.monotonic() < deadline, f"timed out waiting for {what}; have {sorted(found)}"
        for m in sub.drain(quiet=0.2, limit=0.5):
            found[m.topic] = m.payload
    return found


def render(template: str, payload: bytes) -> str:
    """A value_template as Home Assistant renders it for an MQTT message: `value` and `value_json`."""
    text = payload.decode()
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    return jinja2.Environment().from_string(template).render(value=text, value_json=value_json).strip()


def test_discovery_configs_are_valid_republished_and_cleared(
    tmp_path: Path,
    mosquitto,  # noqa: F811
    fast_seg_model: Path,
    bikes_mp4: Path,
    carphone_mp4: Path,
) -> None:
    config = tmp_path / "cameras.yaml"
    street, yard = STREET.format(bikes=bikes_mp4), YARD.format(carphone=carphone_mp4)
    write(config, mosquitto, fast_seg_model, street + yard)
    labels = ["person", "bicycle", "car", "motorcycle", "bus", "truck", "cat", "dog"]  # the COCO defaults
    # street: status, count + occupancy per label and per (road, car|person), line in/out, snapshot; yard: person
    expected = 1 + 2 * len(labels) + 2 * 2 + 2 + 1 + (1 + 2)
    with Subscriber(mosquitto, "homeassistant/#", "site/cams/#") as sub, InProcess(config) as running:
        seen: dict[str, bytes] = {}
        collect(sub, lambda f: sum(t.startswith("homeassistant/") for t in f) >= expected, 30, "configs", seen)
        configs = {t: json.loads(p) for t, p in seen.items() if t.startswith("homeassistant/")}
        assert len(configs) == expected, sorted(configs)
        for topic, payload in configs.items():
            assert problems(topic, payload) == []
        assert len({c["unique_id"] for c in configs.values()}) == expected
        assert {c["device"]["name"] for c in configs.values()} == {"street", "yard"}
        assert all(c["availability"][0]["topic"] == "site/cams/available" for c in configs.values())
        yard_ids = sorted(c["unique_id"] for c in configs.values() if c["device"]["name"] == "yard")
        assert yard_ids == ["site_cams_yard_person_count", "site_cams_yard_person_occupancy", "site_cams_yard_status"]

        # Every state an entity reads is on the broker (retained), and its template turns it into a valid state.
        reads = {c.get("state_topic") or c.get("image_topic") for c in configs.values()}
        states = collect(sub, lambda f: reads <= f.keys(), 60, "a message on every state topic (snapshot too)", seen)
        assert states["site/cams/available"] == b"online"
        for topic, c in configs.items():
            component = topic.split("/")[1]
            if component == "image":
                assert states[c["image_topic"]][:2] == b"\xff\xd8", "the snapshot is not a JPEG"
                continue
            payload = states[c["state_topic"]]
            if "value_template" not in c:  # a count: the payload itself, a number
                assert int(payload) >= 0, (topic, payload)
                continue
            value = render(c["value_template"], payload)
            if component == "binary_sensor":
                assert value == ("ON" if int(payload) > 0 else "OFF"), (topic, payload, value)
            elif c.get("device_class") == "enum":
                assert value in c["options"], (topic, value)
                assert isinstance(json.loads(states[c["json_attributes_topic"]]), dict)
            else:  # crossings of a line
                assert int(value) >= 0, (topic, payload, value)

        # Home Assistant restarts and says so: every config is sent again.
        sub.drain(quiet=0.3, limit=1.0)
        sub.publish("homeassistant/status", "online")  # Home Assistant's birth message
        again = collect(sub, lambda f: configs.keys() <= f.keys(), 30, "the configs sent again after `online`")
        assert {t: json.loads(again[t]) for t in configs} == configs
        assert running.daemon.discovery.births == 1

        # A reload removes the yard: its entities go (empty retained configs), and so does its status.
        write(config, mosquitto, fast_seg_model, street)
        sub.drain(quiet=0.3, limit=1.0)
        running.reload()
        yard_topics = {t for t, c in configs.items() if c["device"]["name"] == "yard"}
        cleared = collect(sub, lambda f: (yard_topics | {"site/cams/yard/status"}) <= f.keys(), 30, "yard cleared")
        assert all(cleared[t] == b"" for t in yard_topics | {"site/cams/yard/status"})
        assert "yard" not in running.daemon.cameras

    with Subscriber(mosquitto, "homeassistant/#", "site/cams/yard/#") as late:
        retained = {m.topic for m in late.drain(quiet=0.5) if m.retain}
    assert not retained & yard_topics and not [t for t in retained if t.startswith("site/cams/yard/")]
    assert retained == configs.keys() - yard_topics, "the street's configs stay retained"


@pytest.mark.parametrize(
    ("configured", "classes", "names", "expected"),
    [
        (None, None, ["person", "car", "chair"], ["person", "car"]),  # the COCO defaults the model knows
        (None, None, ["crack", "rust"], ["crack", "rust"]),  # a custom model: all its classes
        (None, ["chair", "car"], ["person", "car", "chair"], ["car", "chair"]),  # model.classes
        (["chair", "dog", "chair"], None, ["person", "chair"], ["chair"]),  # configured, known to the model
        (["person", "car"], ["car"], ["person", "car"], ["car"]),  # ... and kept by the camera
    ],
)
def test_which_labels_get_entities(configured, classes, names, expected) -> None:
    assert entity_labels(names, classes, configured) == expected


def test_discovery_needs_mqtt(tmp_path: Path) -> None:
    from streamseg.errors import ConfigError

    text = "homeassistant: {enabled: true}\ncameras: {a: {source: {url: rtsp://h/s}, model: {path: m.onnx}}}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "c.yaml", check_models=False)
    assert err.value.problems == [f"{tmp_path / 'c.yaml'}: homeassistant.enabled: needs the mqtt section: discovery "
                                  "configs go to the broker"]  # fmt: skip
