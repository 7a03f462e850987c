"""Fixtures for the sink tests: a real mosquitto broker (shared with other test folders)."""

from tests.mqtt_broker import mosquitto  # noqa: F401 - the fixture
