"""What every sink receives, and the thread + bounded queue that keeps a slow sink off the hot path."""

from __future__ import annotations

import logging
import queue
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import supervision as sv

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FrameResult:
    """One processed frame: tracked detections plus the track events it produced."""

    camera: str
    frame: int  # index of the frame in the decoded stream
    pts: float  # seconds within the stream
    capture_ts: float  # Unix epoch seconds
    width: int
    height: int
    detections: sv.Detections  # tracker_id set (-1 = not yet confirmed) when tracking is on
    events: list = field(default_factory=list)  # list[streamseg.tracking.events.TrackEvent]
    image: np.ndarray | None = None  # BGR copy of the frame, only when a sink needs_image
    final: bool = False  # no frame: only the `end` events that close the stream (detections empty)
    fps: float = 0.0  # the camera's processing rate: the source's frame rate, capped by the config's `fps`
    encoded: dict = field(default_factory=dict)  # wire encodings of `detections`, shared by the sinks


_STOP = object()


class Sink(ABC):
    """A consumer of FrameResults running on its own thread.

    `submit` never blocks inference unless `block_when_full` is set (file pipelines, where the user wants
    every frame in the output and the source itself is paced by the pipeline); otherwise a full queue drops
    the result and counts it in `dropped`.
    """

    needs_image: bool = False  # a class or instance attribute: the pipeline copies frames when any sink says so
    kind: ClassVar[str] = "sink"

    def __init__(self, camera: str, *, queue_size: int = 64, block_when_full: bool = False) -> None:
        self.camera = camera
        self.block_when_full = block_when_full
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self.busy_s = 0.0  # time spent in write(), for bench per-stage figures
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}:{self.camera}", daemon=True)
        self._thread.start()

    def submit(self, result: FrameResult) -> bool:
        if self.error is not None:
            return False
        try:
            if self.block_when_full:
                self._queue.put(result)
            else:
                self._queue.put_nowait(result)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def stop(self, timeout: float | None = 30.0) -> None:
        """Drain what is queued, then close."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # -- to implement ------------------------------------------------------------------------------
    def open(self) -> None:  # noqa: B027 - optional hook
        """Called on the caller's thread before the worker starts (open files, connect)."""

    @abstractmethod
    def write(self, result: FrameResult) -> None:
        """Handle one result (on the sink's thread)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release (on the sink's thread, after the queue is drained)."""

    # -- worker ------------------------------------------------------------------------------------
    def _run(self) -> None:
        import time

        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self.error is not None:
                continue  # keep draining so a blocked producer is released
            t0 = time.perf_counter()
            try:
                self.write(item)
                self.written += 1
            except Exception as exc:  # one broken sink must not take the camera down
                self.error = f"{self.kind} sink for camera {self.camera!r} failed: {exc}"
                log.error(self.error)
            self.busy_s += time.perf_counter() - t0
        try:
            self.close()
        except Exception as exc:
            self.error = self.error or f"{self.kind} sink for camera {self.camera!r} failed to close: {exc}"
            log.error(self.error)
