"""The live view of one camera: the latest frame, annotated and JPEG-encoded only when someone looks at it.

The sink's own thread keeps what the status page shows (the latest result, label / zone / line counts, the last
events), for every frame, in order. It never encodes: a viewer asks for `jpeg()`, which annotates and encodes the
latest frame once, shared by every viewer of that frame. The camera even copies its frames for the live view only
while someone watches: an open MJPEG stream, or a snapshot asked for in the last WATCH_S seconds (the status page
asks several times a second); the first snapshot after a quiet spell waits for the next frame.

A viewer slower than the camera simply gets the newest frame next time; the frames it never saw cost nothing and
never delay MQTT (submit never blocks, not even for a file whose other outputs wait).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any, ClassVar

import cv2

from streamseg.config.camera import CameraConfig
from streamseg.config.zones import LineConfig, ZoneConfig
from streamseg.detections import labels_of
from streamseg.sinks.annotate import annotate, draw_overlays
from streamseg.sinks.base import FrameResult, Sink
from streamseg.sinks.mqtt.topics import label_counts, line_payload, zone_counts

WATCH_S = 10.0  # a snapshot keeps the camera copying frames for the live view this long
FIRST_FRAME_S = 2.0  # how long the first snapshot after a quiet spell waits for a frame with its image


class LiveSink(Sink):
    """Keeps the camera's latest frame and counts for the HTTP server (streamseg.http)."""

    kind: ClassVar[str] = "live"

    def __init__(
        self,
        camera: str,
        *,
        quality: int = 75,
        events: int = 20,
        zones: Mapping[str, ZoneConfig] | None = None,
        lines: Mapping[str, LineConfig] | None = None,
    ) -> None:
        super().__init__(camera, queue_size=8)  # never block_when_full: a viewer never slows a camera
        self.quality = quality
        self.zones, self.lines = dict(zones or {}), dict(lines or {})
        self.seq = 0  # results received; the latest one's number
        self.encoded = 0  # JPEGs made (frames some viewer saw)
        self.encode_s = 0.0  # time spent annotating and encoding them
        self.viewers = 0  # open MJPEG streams
        self._latest: FrameResult | None = None
        self._counts: dict[str, int] = {}  # label -> in view now
        self._zones: dict[str, dict[str, int]] = {}  # zone -> label -> in the zone now
        self._lines: dict[str, dict[str, Counter[str]]] = {}  # line -> in|out -> label -> crossings
        self._events: deque[dict[str, Any]] = deque(maxlen=events)
        self._new = threading.Condition()  # notified on each result
        self._encode = threading.Lock()  # one encoder per camera: viewers of one frame share its JPEG
        self._jpeg: tuple[int, bytes] | None = None  # (seq, JPEG) of the last frame encoded
        self._wanted_until = 0.0  # monotonic time until which a snapshot viewer counts as watching

    @property
    def needs_image(self) -> bool:  # type: ignore[override]
        """Whether the camera should copy its frames for this output now: only while someone watches."""
        return self.viewers > 0 or time.monotonic() < self._wanted_until

    @classmethod
    def from_config(cls, camera: str, cfg: CameraConfig, *, quality: int = 75, events: int = 20) -> LiveSink:
        return cls(camera, quality=quality, events=events, zones=cfg.zones, lines=cfg.lines)

    # -- the sink's thread -------------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        counts = label_counts(result)
        zones: dict[str, dict[str, int]] = {name: {} for name in self.zones}
        for key, n in zone_counts(result).items():  # "zones/{zone}/{label}"
            _, zone, label = key.split("/", 2)
            zones.setdefault(zone, {})[label] = n
        if any(result.crossings):
            for label, crossed in zip(labels_of(result.detections), result.crossings, strict=True):
                for line, direction in crossed:
                    self._lines.setdefault(line, {"in": Counter(), "out": Counter()})[direction][label] += 1
        with self._new:
            self._latest = result
            self._counts, self._zones = counts, zones
            self._events.extend(e.to_dict() for e in result.events)
            self.seq += 1
            self._new.notify_all()

    def finish(self, end_events: list) -> None:
        with self._new:
            self._events.extend(e.to_dict() for e in end_events)
            self._new.notify_all()

    # -- viewers (the HTTP server's threads) -------------------------------------------------------
    def wait(self, after: int, timeout: float) -> int:
        """Block until a result newer than number `after` arrived (or `timeout`); the latest number."""
        with self._new:
            self._new.wait_for(lambda: self.seq > after, timeout)
            return self.seq

    def watch(self, change: int) -> None:
        """An MJPEG viewer starts (+1) or stops (-1) watching."""
        with self._new:
            self.viewers += change

    def jpeg(self, wait: float = FIRST_FRAME_S) -> tuple[int, bytes] | None:
        """(number, JPEG) of the latest frame with its detections, zones and lines drawn. The latest result may have
        no image (nobody watched when it was made): then this waits up to `wait` seconds for one that has. None
        when there is none (no frame yet, or the camera has stopped)."""
        self._wanted_until = time.monotonic() + WATCH_S
        with self._encode:
            with self._new:
                self._new.wait_for(lambda: self._latest is not None and self._latest.image is not None, wait)
                latest, seq = self._latest, self.seq
            if latest is None or latest.image is None:
                return None
            if self._jpeg is not None and self._jpeg[0] == seq:
                return self._jpeg
            t0 = time.perf_counter()
            image = annotate(latest.image, latest.detections)
            if self.zones or self.lines:
                image = draw_overlays(image, self.zones, self.lines)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise ValueError(f"camera {self.camera!r}: JPEG encoding failed")
            self._jpeg = (seq, buf.tobytes())
            self.encoded += 1
            self.encode_s += time.perf_counter() - t0
            return self._jpeg

    def view(self) -> dict[str, Any]:
        """What the status page shows of the camera now (docs/http.md, /api/cameras)."""
        with self._new:
            latest = self._latest
            return {
                "frame": None if latest is None else latest.frame,
                "size": None if latest is None else [latest.width, latest.height],
                "counts": dict(self._counts),
                "zones": {zone: dict(labels) for zone, labels in self._zones.items()},
                "lines": {name: line_payload(self._lines.get(name) or _no_crossings()) for name in self.lines},
                "events": list(self._events)[::-1],  # newest first
                "viewers": self.viewers,
                "jpegs": self.encoded,
                "jpeg_ms": round(1000 * self.encode_s / self.encoded, 2) if self.encoded else None,
            }


def _no_crossings() -> dict[str, Counter[str]]:
    return {"in": Counter(), "out": Counter()}
