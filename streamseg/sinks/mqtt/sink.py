"""The MQTT sink: one camera's detections, events, counts and snapshots, published in order."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from streamseg.config.camera import CameraConfig
from streamseg.config.snapshots import SnapshotsConfig
from streamseg.detections import labels_of
from streamseg.sinks.base import FrameResult, Sink, waits_for_sinks
from streamseg.sinks.mqtt.topics import label_counts, line_payload, snapshot_jpeg, zone_counts
from streamseg.sinks.mqtt.transport import MqttPublisher
from streamseg.sinks.serialize import frame_payload
from streamseg.vocab import EventType


class MqttSink(Sink):
    """Publishes one camera's detections, events, counts and snapshots, in order, on the sink's thread.

    Per frame: `{prefix}/{camera}/detections` (when `detections` is on), then each track event on
    `{prefix}/{camera}/events` (both through the publisher's disk outbox), a JPEG on
    `{prefix}/{camera}/snapshot` per `new` event (when `snapshots` is on), then the retained counts that
    changed: `{prefix}/{camera}/{label}` (in view), `{prefix}/{camera}/zones/{zone}/{label}` (in a zone) and
    `{prefix}/{camera}/lines/{line}` (crossings since start). In-view and zone counts go to 0 when the last
    one leaves, and for all when the sink closes. With tracking, only confirmed tracks (tracker_id >= 0) count.
    """

    kind = "mqtt"

    def __init__(
        self,
        camera: str,
        publisher: MqttPublisher,
        *,
        mask_format: str = "polygon",
        detections: bool = True,
        polygon_tolerance: float = 1.0,
        snapshots: SnapshotsConfig | None = None,
        queue_size: int = 64,
        block_when_full: bool = False,
    ) -> None:
        super().__init__(camera, queue_size=queue_size, block_when_full=block_when_full)
        self.publisher = publisher
        self.mask_format = mask_format
        self.detections = detections
        self.polygon_tolerance = polygon_tolerance
        self.snapshots = snapshots if snapshots is not None and snapshots.enabled else None
        self.needs_image = self.snapshots is not None  # the pipeline copies frames only for sinks that ask
        self._counts: dict[str, int] = {}  # topic suffix -> count last published (sink thread only)
        self._lines: dict[str, dict[str, Counter[str]]] = {}  # line -> direction -> label -> crossings
        self.retained: set[str] = set()  # topic suffixes under the camera published retained (cleared on removal)

    @classmethod
    def from_config(cls, camera: str, cfg: CameraConfig, publisher: MqttPublisher, *, detections: bool) -> MqttSink:
        """`detections`: the `mqtt.detections` setting (publish a message per processed frame)."""
        sink = cls(
            camera,
            publisher,
            mask_format=cfg.mask_format,
            detections=detections,
            polygon_tolerance=cfg.polygon_tolerance,
            snapshots=cfg.snapshots,
            block_when_full=waits_for_sinks(cfg),
        )
        if publisher.outbox is not None:  # what fails there is the outbox file (full disk): say which
            sink.label = f"mqtt output (outbox {publisher.outbox.path})"
        return sink

    def write(self, result: FrameResult) -> None:
        if self.detections and result.inferred:  # detections are per processed frame
            payload = frame_payload(
                result, self.mask_format, publish_ts=time.time(), polygon_tolerance=self.polygon_tolerance
            )
            self.publisher.publish(f"{self.camera}/detections", payload, kind="detections")
        self._publish_events(result.events, result.image)
        self._publish_counts({**label_counts(result), **zone_counts(result)})
        self._publish_lines(result)

    def finish(self, end_events: list) -> None:
        self._publish_events(end_events, None)

    def close(self) -> None:
        self._publish_counts({})  # the camera is gone: nothing of it is in view any more

    def _publish_counts(self, counts: dict[str, int]) -> None:
        """counts: topic suffix under the camera -> count now; publishes the ones that changed."""
        for suffix in sorted(self._counts.keys() | counts.keys()):
            count = counts.get(suffix, 0)
            if count != self._counts.get(suffix, 0):
                self.publisher.publish(f"{self.camera}/{suffix}", count, retain=True)
                self.retained.add(suffix)
        self._counts = {k: v for k, v in counts.items() if v}

    def _publish_events(self, events: list, image: np.ndarray | None) -> None:
        for event in events:
            self.publisher.publish(f"{self.camera}/events", event.to_dict(), kind="events")
            if self.snapshots is not None and event.type == EventType.NEW and image is not None:
                jpeg = snapshot_jpeg(image, event.after.get("box"), self.snapshots)
                self.publisher.publish(f"{self.camera}/snapshot", jpeg, retain=True)
                self.retained.add("snapshot")

    def _publish_lines(self, result: FrameResult) -> None:
        if not any(result.crossings):
            return
        changed = set()
        for label, crossed in zip(labels_of(result.detections), result.crossings, strict=True):
            for line, direction in crossed:
                counts = self._lines.setdefault(line, {"in": Counter(), "out": Counter()})
                counts[direction][label] += 1
                changed.add(line)
        for line in sorted(changed):
            self.publisher.publish(f"{self.camera}/lines/{line}", line_payload(self._lines[line]), retain=True)
            self.retained.add(f"lines/{line}")
