"""Home Assistant MQTT discovery: each camera becomes a device whose entities read the topics streamseg already
publishes (docs/mqtt.md). Home Assistant's discovery protocol (its MQTT integration docs): one retained JSON
config per entity on `{discovery_prefix}/{component}/{unique_id}/config`, an empty retained payload removes it,
and Home Assistant announces itself with `online` on `{discovery_prefix}/status` (then every config is sent
again, for a broker that lost them).

Per camera (`{p}` is mqtt.topic_prefix):
- sensor `Status` from `{p}/{camera}/status` (an enum of the camera states, the payload as attributes);
- per label: sensor `<label> count` from `{p}/{camera}/<label>` and binary_sensor `<label> occupancy` (on while
  the count is above 0);
- per zone and label: the same from `{p}/{camera}/zones/<zone>/<label>`;
- per line: sensors `<line> in` and `<line> out` from `{p}/{camera}/lines/<line>`;
- with snapshots on: image `Snapshot` from `{p}/{camera}/snapshot`.
Every entity is available while `{p}/available` is `online`. Which labels: `homeassistant.labels`
(streamseg.config.homeassistant).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any

from streamseg import __version__
from streamseg.config.homeassistant import DEFAULT_LABELS, HomeAssistantConfig
from streamseg.sinks.mqtt.topics import label_topic
from streamseg.vocab import CameraState

if TYPE_CHECKING:
    from streamseg.config.camera import CameraConfig
    from streamseg.sinks.mqtt import MqttPublisher

log = logging.getLogger(__name__)

ORIGIN = {"name": "streamseg", "sw_version": __version__, "support_url": "https://github.com/streamseg/streamseg"}
_NOT_IN_AN_ID = re.compile(r"[^A-Za-z0-9_-]")  # discovery topic levels and unique ids: [a-zA-Z0-9_-]
OCCUPIED = "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}"


def slug(text: str) -> str:
    return _NOT_IN_AN_ID.sub("_", text) or "_"


def entity_labels(names: list[str], classes: list[str] | None, configured: list[str] | None) -> list[str]:
    """The labels a camera gets entities for, in order. `names`: the model's class names; `classes`: the labels
    the camera keeps (model.classes, as names), None for all; `configured`: homeassistant.labels."""
    kept = [n for n in names if classes is None or n in classes]
    if configured is not None:
        return [label for label in dict.fromkeys(configured) if label in kept]
    if classes is not None:
        return kept
    common = [label for label in DEFAULT_LABELS if label in kept]
    return common or kept


def camera_configs(
    camera: str, cfg: CameraConfig, labels: list[str], *, prefix: str, ha: HomeAssistantConfig, model: str
) -> dict[str, dict[str, Any]]:
    """discovery topic -> config payload, for every entity of one camera. `model`: shown as the device's model."""
    base = f"{slug(prefix)}_{camera}"  # unique across cameras and across daemons with their own topic_prefix
    state = f"{prefix}/{camera}"
    common = {
        "availability": [
            {"topic": f"{prefix}/available", "payload_available": "online", "payload_not_available": "offline"}
        ],
        "device": {
            "identifiers": [base],
            "name": camera,
            "manufacturer": "streamseg",
            "model": model,
            "sw_version": __version__,
        },
        "origin": ORIGIN,
    }
    configs: dict[str, dict[str, Any]] = {}

    def add(component: str, object_id: str, **options: Any) -> None:
        unique_id = f"{base}_{object_id}"
        configs[f"{ha.discovery_prefix}/{component}/{unique_id}/config"] = {"unique_id": unique_id, **options, **common}

    add(
        "sensor",
        "status",
        name="Status",
        state_topic=f"{state}/status",
        value_template="{{ value_json.state }}",
        json_attributes_topic=f"{state}/status",
        device_class="enum",
        options=list(CameraState),
        entity_category="diagnostic",
        icon="mdi:cctv",
    )

    def counted(object_id: str, name: str, topic: str) -> None:
        count = {"state_topic": topic, "state_class": "measurement", "icon": "mdi:counter"}
        add("sensor", f"{object_id}_count", name=f"{name} count", **count)
        occupied = {"state_topic": topic, "value_template": OCCUPIED, "device_class": "occupancy"}
        add("binary_sensor", f"{object_id}_occupancy", name=f"{name} occupancy", **occupied)

    for label in labels:
        counted(slug(label), label.capitalize(), f"{state}/{label_topic(label)}")
    for zone, zone_cfg in cfg.zones.items():
        for label in labels:
            if zone_cfg.labels is None or label in zone_cfg.labels:
                counted(f"{zone}_{slug(label)}", f"{zone} {label}", f"{state}/zones/{zone}/{label_topic(label)}")
    for line in cfg.lines:
        for direction in ("in", "out"):
            crossings = {
                "state_topic": f"{state}/lines/{line}",
                "value_template": f"{{{{ value_json['{direction}'] }}}}",
                "state_class": "total_increasing",
                "icon": "mdi:transit-transfer",
            }
            add("sensor", f"{line}_{direction}", name=f"{line} {direction}", **crossings)
    if cfg.snapshots.enabled:
        add("image", "snapshot", name="Snapshot", image_topic=f"{state}/snapshot", content_type="image/jpeg")
    return configs


def initial_states(camera: str, cfg: CameraConfig, labels: list[str]) -> dict[str, Any]:
    """Topic suffixes -> the value that is true when a camera starts (nothing counted yet), so that its sensors
    read 0 rather than `unknown` until something is seen. Published before the camera starts, so the camera's
    own counts always come after them."""
    zero_line = {"in": 0, "out": 0, "labels": {}}
    states: dict[str, Any] = {f"{camera}/{label_topic(label)}": 0 for label in labels}
    for zone, zone_cfg in cfg.zones.items():
        for label in labels:
            if zone_cfg.labels is None or label in zone_cfg.labels:
                states[f"{camera}/zones/{zone}/{label_topic(label)}"] = 0
    states.update({f"{camera}/lines/{line}": zero_line for line in cfg.lines})
    return states


class Discovery:
    """Publishes (retained) and clears the discovery configs of the daemon's cameras; sends them all again when
    Home Assistant announces `online`. Thread-safe: the daemon adds and removes cameras (reloads) while paho's
    thread may be answering a birth message."""

    def __init__(self, publisher: MqttPublisher, cfg: HomeAssistantConfig) -> None:
        self.publisher = publisher
        self.cfg = cfg
        self._configs: dict[str, dict[str, dict[str, Any]]] = {}  # camera -> discovery topic -> payload
        self._lock = threading.Lock()
        self._births = 0
        publisher.subscribe(f"{cfg.discovery_prefix}/status", self._on_status)

    @property
    def births(self) -> int:
        """How many times Home Assistant announced `online` (and every config was sent again)."""
        return self._births

    def add(self, camera: str, cfg: CameraConfig, names: list[str], classes: list[str] | None, model: str) -> None:
        """Publish the configs of a camera about to start (and clear the ones it no longer has: a reload)."""
        labels = entity_labels(names, classes, self.cfg.labels)
        configs = camera_configs(camera, cfg, labels, prefix=self.publisher.prefix, ha=self.cfg, model=model)
        with self._lock:
            old = self._configs.get(camera, {})
            self._configs[camera] = configs
            for topic in old.keys() - configs.keys():
                self.publisher.publish_topic(topic, b"", retain=True, qos=1)
            for topic, payload in configs.items():
                self.publisher.publish_topic(topic, payload, retain=True, qos=1)
        for suffix, value in initial_states(camera, cfg, labels).items():
            self.publisher.publish(suffix, value, retain=True)
        log.info("homeassistant: camera %r: %d entities (labels: %s)", camera, len(configs), ", ".join(labels))

    def remove(self, camera: str) -> None:
        """Clear a removed camera's configs: Home Assistant deletes its entities and the device."""
        with self._lock:
            for topic in self._configs.pop(camera, {}):
                self.publisher.publish_topic(topic, b"", retain=True, qos=1)

    def clear(self) -> None:
        """Clear every config (discovery turned off by a reload)."""
        for camera in list(self._configs):
            self.remove(camera)

    def close(self) -> None:
        """Stop listening for Home Assistant's birth messages (the configs stay; see clear())."""
        self.publisher.unsubscribe(f"{self.cfg.discovery_prefix}/status")

    def republish(self) -> None:
        with self._lock:
            for configs in self._configs.values():
                for topic, payload in configs.items():
                    self.publisher.publish_topic(topic, payload, retain=True, qos=1)

    def _on_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":  # Home Assistant (re)started: it may have lost what it knew
            self._births += 1
            log.info("homeassistant: Home Assistant is online; sending the discovery configs again")
            self.republish()
