"""MQTT output: the transport (one broker connection per process, with its disk outbox), the topics and
payloads, and one ordered sink per camera. The topics and payloads are the public contract in docs/mqtt.md
(schemas in streamseg/sinks/schemas/)."""

from streamseg.sinks.mqtt.sink import MqttSink
from streamseg.sinks.mqtt.transport import MqttPublisher, make_client

__all__ = ["MqttPublisher", "MqttSink", "make_client"]
