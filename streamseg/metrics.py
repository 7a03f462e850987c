"""Prometheus metrics: per-camera gauges and counters, read from the running pipelines at scrape time.

Reading at scrape time (a custom collector) keeps the hot path free of metric updates and needs no global
state: each Daemon has its own registry, served by prometheus_client's HTTP server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streamseg.vocab import CameraState

if TYPE_CHECKING:
    from streamseg.pipeline import CameraPipeline

log = logging.getLogger(__name__)

STATES = tuple(CameraState)


class CameraCollector:
    """Yields one sample per camera (and per state for `streamseg_camera_state`) on every scrape."""

    def __init__(self, cameras: Callable[[], Mapping[str, CameraPipeline]]) -> None:
        self._cameras = cameras

    def collect(self) -> Iterator[Metric]:
        cameras = dict(self._cameras())
        state = GaugeMetricFamily(
            "streamseg_camera_state", "1 for the camera's current state, 0 for the others", labels=["camera", "state"]
        )
        fps = GaugeMetricFamily("streamseg_camera_fps", "Frames processed per second (recent)", labels=["camera"])
        latency = GaugeMetricFamily(
            "streamseg_camera_latency_seconds", "Capture to hand-off to the sinks (recent mean)", labels=["camera"]
        )
        infer = GaugeMetricFamily(
            "streamseg_camera_inference_ms", "Mean engine time per frame, milliseconds", labels=["camera"]
        )
        wanted = GaugeMetricFamily(
            "streamseg_camera_wanted_fps",
            "Frames a second the camera wants processed (source rate capped by fps); more than fps + gated fps "
            "when inference cannot keep up",
            labels=["camera"],
        )
        gated_fps = GaugeMetricFamily(
            "streamseg_camera_gated_fps", "Frames a second skipped by motion gating (recent)", labels=["camera"]
        )
        frames = CounterMetricFamily("streamseg_camera_frames", "Frames processed (inferred)", labels=["camera"])
        gated = CounterMetricFamily(
            "streamseg_camera_gated_frames", "Frames not inferred because nothing moved", labels=["camera"]
        )
        decoded = CounterMetricFamily("streamseg_camera_decoded_frames", "Frames decoded", labels=["camera"])
        dropped = CounterMetricFamily(
            "streamseg_camera_dropped_frames", "Frames dropped because inference was behind", labels=["camera"]
        )
        reconnects = CounterMetricFamily("streamseg_camera_reconnects", "Reconnect attempts", labels=["camera"])
        sink_labels = ["camera", "sink"]
        sink_failing = GaugeMetricFamily(
            "streamseg_sink_failing",
            "1 while the output is failing (its writes are retried), else 0",
            labels=sink_labels,
        )
        sink_failures = CounterMetricFamily(
            "streamseg_sink_failures", "Failed write attempts of the output, retries included", labels=sink_labels
        )
        sink_written = CounterMetricFamily("streamseg_sink_written", "Results the output wrote", labels=sink_labels)
        sink_dropped = CounterMetricFamily(
            "streamseg_sink_dropped", "Results the output lost (its queue was full, or it gave up)", labels=sink_labels
        )
        for name, cam in cameras.items():
            for s in STATES:
                state.add_metric([name, s], 1.0 if cam.state == s else 0.0)
            fps.add_metric([name], cam.stats.fps)
            latency.add_metric([name], cam.stats.latency_s)
            infer.add_metric([name], cam.times.ms("infer"))
            wanted.add_metric([name], cam.wanted_fps)
            gated_fps.add_metric([name], cam.stats.gated_fps)
            frames.add_metric([name], cam.stats.frames)
            gated.add_metric([name], cam.stats.gated)
            decoded.add_metric([name], cam.source.frames_decoded)
            dropped.add_metric([name], cam.dropped)
            reconnects.add_metric([name], cam.reconnects)
            for sink in cam.sinks:
                sink_failing.add_metric([name, sink.kind], 1.0 if sink.error is not None else 0.0)
                sink_failures.add_metric([name, sink.kind], sink.failures)
                sink_written.add_metric([name, sink.kind], sink.written)
                sink_dropped.add_metric([name, sink.kind], sink.dropped)
        yield from (state, fps, wanted, gated_fps, latency, infer, frames, gated, decoded, dropped, reconnects)
        yield from (sink_failing, sink_failures, sink_written, sink_dropped)


class MetricsServer:
    """`/metrics` over HTTP on host:port until `close()`."""

    def __init__(self, cameras: Callable[[], Mapping[str, CameraPipeline]], host: str, port: int) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(CameraCollector(cameras))
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host, self.port = host, self._server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
