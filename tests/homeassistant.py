"""What Home Assistant requires of an MQTT discovery config, per entity type, from its MQTT integration docs
(home-assistant.io/integrations/mqtt, sensor.mqtt, binary_sensor.mqtt, image.mqtt): the discovery topic's form,
the required options, the allowed values of the enumerated ones, and the documented option names (Home
Assistant ignores unknown keys, so a misspelt one would silently do nothing)."""

from __future__ import annotations

import re
from typing import Any

TOPIC = re.compile(r"^(?P<prefix>.+)/(?P<component>[a-z_]+)/(?:[a-zA-Z0-9_-]+/)?(?P<object_id>[a-zA-Z0-9_-]+)/config$")

COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id", "device",
    "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon", "json_attributes_template",
    "json_attributes_topic", "name", "object_id", "origin", "payload_available", "payload_not_available", "qos",
    "unique_id",
}  # fmt: skip
OPTIONS = {
    "sensor": COMMON | {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
        "suggested_display_precision", "state_class", "state_topic", "unit_of_measurement", "value_template",
    },
    "binary_sensor": COMMON | {
        "device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on", "state_topic",
        "value_template",
    },
    "image": COMMON | {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
}  # fmt: skip
BINARY_SENSOR_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
}  # fmt: skip
STATE_CLASSES = {"measurement", "total", "total_increasing"}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id", "name",
    "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip


def topic_ok(topic: Any) -> bool:
    """A topic Home Assistant can subscribe to for one entity: a non-empty UTF-8 string, no NUL, no wildcard."""
    return isinstance(topic, str) and 0 < len(topic.encode()) <= 65535 and not set(topic) & {"\0", "+", "#"}


def problems(topic: str, config: dict[str, Any], discovery_prefix: str = "homeassistant") -> list[str]:
    """Why Home Assistant would refuse (or misread) this discovery config; [] when it takes it."""
    found = []
    match = TOPIC.match(topic)
    if match is None or match["prefix"] != discovery_prefix:
        return [f"{topic}: not <{discovery_prefix}>/<component>/[<node_id>/]<object_id>/config"]
    component = match["component"]
    if component not in OPTIONS:
        return [f"{topic}: component {component!r} is not checked here"]
    if not isinstance(config, dict):
        return [f"{topic}: the payload must be a JSON object"]
    found += [f"{topic}: unknown option {k!r}" for k in sorted(config.keys() - OPTIONS[component])]
    if not isinstance(config.get("unique_id"), str) or not config["unique_id"]:
        found.append(f"{topic}: unique_id is required for a device (and for the UI to manage the entity)")
    device = config.get("device")
    if device is not None:
        if not (device.get("identifiers") or device.get("connections")):
            found.append(f"{topic}: device needs identifiers or connections")
        found += [f"{topic}: unknown device option {k!r}" for k in sorted(device.keys() - DEVICE_KEYS)]
    origin = config.get("origin")
    if origin is not None and not isinstance(origin.get("name"), str):
        found.append(f"{topic}: origin needs a name")
    for entry in config.get("availability", []):
        if not topic_ok(entry.get("topic")):
            found.append(f"{topic}: availability entry without a valid topic: {entry}")
    if "availability" in config and "availability_topic" in config:
        found.append(f"{topic}: availability and availability_topic must not be used together")
    for key in ("state_topic", "json_attributes_topic", "image_topic", "url_topic"):
        if key in config and not topic_ok(config[key]):
            found.append(f"{topic}: {key} is not a valid topic: {config[key]!r}")
    if component in ("sensor", "binary_sensor") and "state_topic" not in config:
        found.append(f"{topic}: state_topic is required")
    if component == "sensor":
        if config.get("device_class") == "enum":
            if not config.get("options"):
                found.append(f"{topic}: an enum sensor needs options")
            if "state_class" in config or "unit_of_measurement" in config:
                found.append(f"{topic}: an enum sensor has no state_class or unit")
        if "state_class" in config and config["state_class"] not in STATE_CLASSES:
            found.append(f"{topic}: state_class {config['state_class']!r} is not one of {sorted(STATE_CLASSES)}")
        if config.get("entity_category") not in (None, "diagnostic"):
            found.append(f"{topic}: a sensor's entity_category can only be diagnostic")
    if component == "binary_sensor" and config.get("device_class", "occupancy") not in BINARY_SENSOR_CLASSES:
        found.append(f"{topic}: binary_sensor device_class {config['device_class']!r} is unknown")
    if component == "image":
        if ("image_topic" in config) == ("url_topic" in config):
            found.append(f"{topic}: an image needs exactly one of image_topic and url_topic")
        if "image_topic" in config and not str(config.get("content_type", "image/jpeg")).startswith("image/"):
            found.append(f"{topic}: content_type must be an image type")
    return found
