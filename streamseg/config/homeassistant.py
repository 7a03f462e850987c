"""`homeassistant:` section: Home Assistant MQTT discovery (a device per camera, its sensors found by itself)."""

from __future__ import annotations

from pydantic import Field, field_validator

from streamseg.config.base import Section
from streamseg.config.mqtt import topic_problem

# Labels that get entities when neither `labels` nor the camera's `model.classes` says which: what a COCO model
# sees around a house. A model that knows none of them (a custom one) gets entities for every class it has.
DEFAULT_LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "cat", "dog")


class HomeAssistantConfig(Section):
    enabled: bool = Field(
        False,
        description="Publish Home Assistant MQTT discovery configs (retained): per camera a device with count sensors "
        "(per label, per zone and label, per line), occupancy binary sensors, a status sensor and, with "
        "`snapshots`, an image. Needs the `mqtt` section.",
    )
    discovery_prefix: str = Field(
        "homeassistant",
        description="Home Assistant's discovery prefix (its MQTT integration setting); its birth message is expected "
        "on `{discovery_prefix}/status`.",
    )
    labels: list[str] | None = Field(
        None,
        description="Labels that get count and occupancy entities. null: the camera's `model.classes` when set, else "
        "those of person, bicycle, car, motorcycle, bus, truck, cat, dog the model knows (a model that knows none of "
        "them: all its classes). Labels the camera's model does not know are left out.",
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        prefix = prefix.removesuffix("/")
        if problem := topic_problem(prefix):
            raise ValueError(f"discovery_prefix {prefix!r} {problem}")
        if "" in prefix.split("/"):
            raise ValueError(f"discovery_prefix {prefix!r} has an empty topic level (a leading '/' or '//')")
        return prefix

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None and not all(label.strip() for label in labels):
            raise ValueError("labels must not be empty strings")
        return labels
