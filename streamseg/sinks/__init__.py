"""Where results go: JSON lines, annotated video (file, RTSP, HLS), MQTT.

Each sink runs on its own thread behind a bounded queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamseg.config.camera import CameraConfig
    from streamseg.config.http import HttpConfig
    from streamseg.sinks.base import Sink
    from streamseg.sinks.mqtt import MqttPublisher


def build_sinks(
    camera: str,
    cfg: CameraConfig,
    publisher: MqttPublisher | None = None,
    *,
    mqtt_detections: bool = True,
    live: HttpConfig | None = None,
) -> list[Sink]:
    """The camera's sinks, from its `outputs:` (MQTT when there is a publisher, the live view for the HTTP server
    when `live`), in a fixed order."""
    sinks: list[Sink] = []
    if cfg.outputs.jsonl is not None:
        from streamseg.sinks.jsonl import JsonlSink

        sinks.append(JsonlSink.from_config(camera, cfg))
    if cfg.outputs.video is not None:
        from streamseg.sinks.video import VideoSink  # PyAV's encoder: only when a camera writes video

        sinks.append(VideoSink.from_config(camera, cfg))
    if cfg.outputs.rtsp is not None:
        from streamseg.sinks.rtsp import RtspSink

        sinks.append(RtspSink.from_config(camera, cfg))
    if cfg.outputs.hls is not None:
        from streamseg.sinks.hls import HlsSink

        sinks.append(HlsSink.from_config(camera, cfg))
    if publisher is not None:
        from streamseg.sinks.mqtt import MqttSink

        sinks.append(MqttSink.from_config(camera, cfg, publisher, detections=mqtt_detections))
    if live is not None:
        from streamseg.sinks.live import LiveSink

        sinks.append(LiveSink.from_config(camera, cfg, quality=live.jpeg_quality, events=live.events))
    return sinks
