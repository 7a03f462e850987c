"""One camera, end to end: source -> ring buffer -> engine -> decode -> tracker -> events -> sinks.

The decoder runs on the source's thread, inference + decode + tracking on the camera's worker thread, and each
sink on its own thread behind a bounded queue, so a slow sink never blocks inference (file pipelines choose to
wait instead, so the output is complete, but never for a failing sink).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import supervision as sv

from streamseg.config.camera import CameraConfig
from streamseg.models.yolo import YoloModel
from streamseg.sinks.base import FrameResult, Sink
from streamseg.sources.frame import Frame
from streamseg.sources.memory import frame_allocator
from streamseg.sources.pyav_source import VideoSource
from streamseg.sources.ring import RingBuffer
from streamseg.sources.url import redact_url
from streamseg.tracking.events import EventTracker
from streamseg.tracking.tracker import make_tracker

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    """Seconds spent per stage on the worker thread, summed over frames (bench and stats)."""

    preprocess: float = 0.0
    infer: float = 0.0
    postprocess: float = 0.0
    track: float = 0.0
    handoff: float = 0.0  # copying the image for sinks and queueing results
    frames: int = 0

    def ms_per_frame(self) -> dict[str, float]:
        n = max(self.frames, 1)
        stages = ("preprocess", "infer", "postprocess", "track", "handoff")
        return {k: 1000.0 * getattr(self, k) / n for k in stages}


@dataclass
class CameraStats:
    frames: int = 0  # frames processed
    detections: int = 0
    events: int = 0
    tracks_in_view: int = 0
    started: float = field(default_factory=time.monotonic)
    recent: deque = field(default_factory=lambda: deque(maxlen=50))  # monotonic times of recent frames
    latency: deque = field(default_factory=lambda: deque(maxlen=50))  # capture -> sinks, seconds, recent frames

    @property
    def fps(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        span = self.recent[-1] - self.recent[0]
        return (len(self.recent) - 1) / span if span > 0 else 0.0

    @property
    def latency_s(self) -> float:
        """Mean seconds from capture (decode) to hand-off to the sinks over the recent frames."""
        return sum(self.latency) / len(self.latency) if self.latency else 0.0


StatusCallback = Callable[[str, str, "str | None"], None]  # (camera, state, error)


class CameraPipeline:
    """start() / stop() / join(); `state` is one of starting, streaming, degraded, reconnecting, stopped, failed.

    The source drives the state while it runs (starting, streaming, reconnecting); while it streams and an
    output is failing the state is `degraded` (frames are processed, that output's results wait or are
    dropped), and `streaming` again once it writes. `status_error` is the error published with the state.
    The worker sets the final state (stopped or failed) once the sinks have drained; a sink still failing
    then makes it `failed`.
    """

    def __init__(
        self,
        name: str,
        cfg: CameraConfig,
        model: YoloModel,
        sinks: list[Sink],
        *,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.model = model
        self.sinks = sinks
        self.on_status = on_status
        self.ring = RingBuffer(cfg.source.buffer_slots, cfg.source.policy, allocator=frame_allocator())
        self.source = VideoSource.from_config(name, cfg.source, ring=self.ring, fps=cfg.fps, on_state=self._on_source)
        self.events = (
            EventTracker(name, cfg.events, zones=cfg.zones, lines=cfg.lines) if cfg.tracker.type != "none" else None
        )
        self.tracker = None  # built on the first frame, once the processing rate is known
        self.times = StageTimes()
        self.stats = CameraStats()
        self.state = "starting"
        self.error: str | None = None  # why the camera failed (final), or a processing failure
        self.status_error: str | None = None  # the error published with the current state
        self._source_state, self._source_error = "starting", None
        self._announced = False  # the first state is published even though `state` starts as "starting"
        for sink in sinks:
            sink.on_change = self._on_sink
        self._needs_image = any(s.needs_image for s in sinks)
        self._rate = 0.0
        self._state_lock = threading.Lock()  # the source thread and the worker both change the state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._set_state("starting")
        for sink in self.sinks:
            sink.start()
        self.source.start()
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the camera to finish: the decoder stops, frames already decoded are still processed."""
        self._stop.set()
        self.source.stop(timeout=0)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    @property
    def dropped(self) -> int:
        """Frames decoded but never processed because inference was behind (live sources)."""
        return self.ring.dropped

    @property
    def reconnects(self) -> int:
        return self.source.reconnects

    @property
    def sink_error(self) -> str | None:
        """The first failing output's error (`jsonl output /x.jsonl: [Errno 28] ...`), None when all write."""
        return next((s.error for s in self.sinks if s.error is not None), None)

    # -- worker ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                frame = self.ring.get(timeout=0.5)
                if frame is None:
                    if self.ring.done:
                        break
                    continue
                try:
                    self._process(frame)
                finally:
                    frame.release()
        except Exception as exc:  # a bug or engine failure ends this camera only
            self.error = f"camera {self.name!r}: processing failed: {exc}"
            log.exception(self.error)
            self.ring.close()
            self.source.stop(timeout=1)
        self._finish()

    def _process(self, frame: Frame) -> None:
        if self.stats.frames == 0:
            self._rate = self._processing_rate()  # known once the source has opened the stream
        t0 = time.perf_counter()
        tensor, letterbox = self.model.preprocess(frame.image)
        t1 = time.perf_counter()
        outputs = self.model.engine.infer(tensor)
        t2 = time.perf_counter()
        detections = self.model.postprocess(outputs, letterbox, frame.image.shape[:2])
        t3 = time.perf_counter()
        events = []
        if self.events is not None:
            if self.tracker is None:
                self.tracker = make_tracker(self.cfg.tracker, self._rate)
            detections = self.tracker.update(detections, timestamp=frame.pts)
            alive = {int(t.tracker_id) for t in getattr(self.tracker, "tracks", [])}
            events = self.events.update(detections, alive, frame.capture_ts, (frame.height, frame.width))
        t4 = time.perf_counter()
        result = FrameResult(
            camera=self.name,
            frame=frame.index,
            pts=frame.pts,
            capture_ts=frame.capture_ts,
            width=frame.width,
            height=frame.height,
            detections=detections,
            events=events,
            image=frame.image.copy() if self._needs_image else None,
            fps=self._rate,
        )
        for sink in self.sinks:
            sink.submit(result)
        t5 = time.perf_counter()

        times = self.times
        times.preprocess += t1 - t0
        times.infer += t2 - t1
        times.postprocess += t3 - t2
        times.track += t4 - t3
        times.handoff += t5 - t4
        times.frames += 1
        stats = self.stats
        stats.frames += 1
        stats.detections += len(detections)
        stats.events += len(events)
        stats.tracks_in_view = len(self.events.active) if self.events is not None else len(detections)
        stats.recent.append(time.monotonic())
        stats.latency.append(time.time() - frame.capture_ts)

    def _processing_rate(self) -> float:
        src = self.source.source_fps or 30.0
        return min(src, self.cfg.fps) if self.cfg.fps else src

    def _finish(self) -> None:
        if self.events is not None and self.events.active:
            events = self.events.finish(time.time())
            self.stats.events += len(events)
            final = FrameResult(self.name, -1, 0.0, time.time(), 0, 0, sv.Detections.empty(), events, final=True)
            for sink in self.sinks:
                sink.submit(final)
        for sink in self.sinks:  # all drain at once: a failing sink's bounded wait does not add up
            sink.request_stop()
        for sink in self.sinks:
            sink.join(sink.drain_timeout + 30.0)
        self.error = self.error or self.source.error or self.sink_error
        self._set_state("failed" if self.error else "stopped", self.error)

    def _on_source(self, state: str, error: str | None) -> None:
        if state in ("stopped", "failed") or self._stop.is_set():
            return  # final: set by the worker once the sinks have drained (see _finish)
        with self._state_lock:
            self._source_state, self._source_error = state, error
        self._refresh()

    def _on_sink(self, _sink: Sink) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """Publish the state the source and the sinks make together: streaming with a failing output is degraded."""
        with self._state_lock:
            if self.state in ("stopped", "failed"):
                return
            state, error = self._source_state, self._source_error
            sink_error = self.sink_error
            if state == "streaming" and sink_error is not None:
                state, error = "degraded", sink_error
            self._publish(state, error)

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._state_lock:
            self._publish(state, error)

    def _publish(self, state: str, error: str | None) -> None:
        """Log and publish a state change, once per change, never the password (caller holds the lock)."""
        same = state == self.state and (state != "degraded" or error == self.status_error)
        if same and self._announced:
            return
        self._announced = True
        self.state, self.status_error = state, error
        where = redact_url(self.cfg.source.url)
        if state == "failed":
            log.error("camera %r (%s): failed: %s", self.name, where, error)
        elif state in ("reconnecting", "degraded"):
            log.warning("camera %r (%s): %s: %s", self.name, where, state, error)
        else:
            log.info("camera %r (%s): %s", self.name, where, state)
        if self.on_status is not None:
            self.on_status(self.name, state, error)
