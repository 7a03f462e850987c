"""streamseg: real-time instance segmentation on video, delivered over MQTT."""

__version__ = "0.1.0"
