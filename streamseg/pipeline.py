"""One camera, end to end: source -> ring -> preprocess -> inference stage -> decode -> tracker -> events -> sinks.

Threads: the decoder (the source's), this camera's worker, the inference stage's workers (shared with the other
cameras on the same model) and one per sink. The worker keeps up to `stage.depth` frames in flight: while the
stage runs frame N, the worker preprocesses frame N+1 and decodes masks, tracks and publishes frame N-1. Frames
complete strictly in their order, so tracking and events see them as the camera produced them.

A slow sink never blocks inference (file pipelines choose to wait instead, so the output is complete, but never
for a failing sink).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import cv2
import numpy as np
import supervision as sv

from streamseg import regions
from streamseg.config.camera import CameraConfig
from streamseg.errors import EngineUnavailable
from streamseg.inference.stage import Inference, InferenceStage
from streamseg.models.letterbox import LetterboxParams
from streamseg.models.yolo import YoloModel
from streamseg.motion import MotionDetector
from streamseg.regions import Window
from streamseg.sinks.base import FrameResult, Sink
from streamseg.sources.backoff import Backoff
from streamseg.sources.frame import Frame
from streamseg.sources.pyav_source import VideoSource
from streamseg.sources.ring import RingBuffer
from streamseg.sources.url import redact_url
from streamseg.timing import StageTimes
from streamseg.tracking.events import EventTracker
from streamseg.tracking.tracker import Tracker
from streamseg.vocab import CameraState, TrackerType

log = logging.getLogger(__name__)

STAGES = ("preprocess", "infer", "postprocess", "track", "handoff")  # the worker's, in bench and stats order
# (with motion.enabled, a "motion" stage too: tools/motion_bench.py measures it)


@dataclass
class CameraStats:
    frames: int = 0  # frames processed (inferred)
    gated: int = 0  # frames taken but not inferred: nothing moved (motion gating)
    detections: int = 0
    events: int = 0
    tracks_in_view: int = 0
    started: float = field(default_factory=time.monotonic)
    recent: deque = field(default_factory=lambda: deque(maxlen=50))  # monotonic times of recent frames
    latency: deque = field(default_factory=lambda: deque(maxlen=50))  # capture -> sinks, seconds, recent frames
    recent_gated: deque = field(default_factory=lambda: deque(maxlen=50))  # monotonic times of recent gated frames

    @property
    def fps(self) -> float:
        """Frames processed (inferred) a second, recently."""
        return _rate(self.recent)

    @property
    def gated_fps(self) -> float:
        """Frames gated (taken, not inferred) a second, recently."""
        return _rate(self.recent_gated)

    @property
    def latency_s(self) -> float:
        """Mean seconds from capture (decode) to hand-off to the sinks over the recent processed frames."""
        return sum(self.latency) / len(self.latency) if self.latency else 0.0


def _rate(times: deque) -> float:
    if len(times) < 2:
        return 0.0
    span = times[-1] - times[0]
    return (len(times) - 1) / span if span > 0 else 0.0


@dataclass(slots=True)
class _Part:
    """One engine input of a frame: the whole frame, or one of its regions."""

    window: Window
    letterbox: LetterboxParams
    tensor: np.ndarray  # the input buffer, reused once the stage is done with it
    future: Future


@dataclass(slots=True)
class _InFlight:
    """A frame handed to the inference stage (or gated): what the worker needs once its outputs are back."""

    index: int
    pts: float
    capture_ts: float
    width: int
    height: int
    parts: list[_Part]  # none: gated, nothing moved; the last detections stand
    image: np.ndarray | None  # a copy of the frame for the sinks that draw or snapshot it


StatusCallback = Callable[[str, str, "str | None"], None]  # (camera, state, error)


class CameraPipeline:
    """start() / stop() / join(); `state` is a CameraState.

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
        stage: InferenceStage,
        sinks: list[Sink],
        *,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.model = model
        self.stage = stage
        self.sinks = sinks
        self.on_status = on_status
        # Frames are decoded into memory the engine copies from fast (page-locked on CUDA engines).
        self.ring = RingBuffer(cfg.source.buffer_slots, cfg.source.policy, allocator=stage.allocate)
        self.source = VideoSource.from_config(name, cfg.source, ring=self.ring, fps=cfg.fps, on_state=self._on_source)
        tracking = cfg.tracker.type != TrackerType.NONE
        self.events = EventTracker(name, cfg.events, zones=cfg.zones, lines=cfg.lines) if tracking else None
        self.tracker: Tracker | None = None  # built on the first frame, once the processing rate is known
        self.times = StageTimes()
        self.stats = CameraStats()
        self.state = CameraState.STARTING
        self.error: str | None = None  # why the camera failed (final), or a processing failure
        self.status_error: str | None = None  # the error published with the current state
        self._source_state, self._source_error = CameraState.STARTING, None
        self._engine_error: str | None = None  # while the inference engine (a remote server) is unavailable
        self._announced = False  # the first state is published even though `state` starts as "starting"
        for sink in sinks:
            sink.on_change = self._on_sink
        self._tensors: list[np.ndarray] = []  # free input buffers
        self._rate = 0.0
        self.motion = MotionDetector(cfg.motion) if cfg.motion.enabled else None
        self._held = sv.Detections.empty()  # the last processed frame's detections (before tracking)
        self._refreshed = -float("inf")  # pts of the last frame inferred (the first: minus this camera's phase)
        # Cameras started together would refresh together, a burst every refresh_seconds: each camera's first
        # refresh comes at its own point of the interval (from its name, so the same every run).
        self._phase = (zlib.crc32(name.encode()) / 2**32) * (cfg.motion.refresh_seconds or 0.0)
        # When the worker last got round its loop (monotonic): streamseg.health calls a worker whose heartbeat
        # is older than `hang_timeout` hung. Waiting for a frame or for an engine to come back still beats;
        # None while it waits for its outputs to drain at the end (each output's own write is watched).
        self.heartbeat: float | None = time.monotonic()
        self._state_lock = threading.Lock()  # the source thread and the worker both change the state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        # OpenCV's own thread pool off: cameras, decoders and engine workers already use every core, and splitting
        # a 320-px resize or a box-sized warp over them cost 2-3x the CPU (letterbox 2.1 against 0.7 ms a frame).
        cv2.setNumThreads(1)
        self.heartbeat = time.monotonic()
        self._set_state(CameraState.STARTING)
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
    def wanted_fps(self) -> float:
        """Frames a second the camera wants processed: its source's rate capped by `fps` (0 until it is known).
        Less than fps + gated_fps when inference cannot keep up (the rest are dropped)."""
        return self._rate

    @property
    def reconnects(self) -> int:
        return self.source.reconnects

    @property
    def sink_error(self) -> str | None:
        """The first failing output's error (`jsonl output /x.jsonl: [Errno 28] ...`), None when all write."""
        return next((s.error for s in self.sinks if s.error is not None), None)

    # -- worker ------------------------------------------------------------------------------------
    def _run(self) -> None:
        pending: deque[_InFlight] = deque()
        try:
            while True:
                self.heartbeat = time.monotonic()
                # Keep the stage fed: take every frame the decoder has ready, up to the depth; wait for one
                # only when nothing is in flight.
                while len(pending) < self.stage.depth:
                    frame = self.ring.get(timeout=0.0 if pending else 0.5)
                    if frame is None:
                        break
                    pending.append(self._submit(frame))
                if pending:
                    self._complete(pending.popleft())
                elif self.ring.done:
                    break
        except Exception as exc:  # a bug or an engine failure ends this camera only
            self.error = f"camera {self.name!r}: processing failed: {exc}"
            log.exception(self.error)
            self.ring.close()
            self.source.stop(timeout=1)
        self._finish()

    def _submit(self, frame: Frame) -> _InFlight:
        """Preprocess a frame (or its regions) into input buffers, hand them to the stage, give the ring slot back.
        A gated frame (nothing moved) gets no input at all."""
        inputs: list[tuple[Window, LetterboxParams, np.ndarray]] = []
        try:
            if not self._rate:
                self._rate = self._processing_rate()  # known once the source has opened the stream
            windows = self._windows(frame)
            with self.times("preprocess"):
                for window in windows:
                    tensor, letterbox = self.model.preprocess(window.crop(frame.image), self._tensor())
                    inputs.append((window, letterbox, tensor))
                # asked per frame: the live view wants images only while someone watches
                image = frame.image.copy() if any(s.needs_image for s in self.sinks) else None
        finally:
            frame.release()
        parts = [_Part(w, lb, t, self.stage.submit(t, camera=self.name)) for w, lb, t in inputs]
        return _InFlight(frame.index, frame.pts, frame.capture_ts, frame.width, frame.height, parts, image)

    def _windows(self, frame: Frame) -> list[Window]:
        """Where to run the model on this frame: the whole frame, its moving regions, or nowhere (gated: nothing
        moved since the previous frame and the last refresh is recent)."""
        whole = [regions.full((frame.height, frame.width))]
        if self.motion is None:
            return whole
        with self.times("motion"):
            motion = self.motion(frame.image)
        cfg = self.cfg.motion
        refresh = cfg.refresh_seconds is not None and frame.pts - self._refreshed >= cfg.refresh_seconds
        if not motion.moving and not refresh:
            return []
        first = self._refreshed == -float("inf")
        self._refreshed = frame.pts - (self._phase if first else 0.0)
        if not cfg.regions or not motion.moving or refresh:
            return whole
        side = max(self.model.imgsz)
        planned = regions.plan(motion.boxes, self._held.xyxy, (frame.height, frame.width), side, cfg.max_regions)
        return whole if planned is None else planned

    def _complete(self, item: _InFlight) -> None:
        """The oldest frame in flight: wait for its outputs, then decode, track and hand it to the sinks.

        A gated frame's detections are the last processed frame's: nothing moved, so they still stand, and the
        tracker is stepped with them at this frame's time, so a still object keeps its track and a lost one ends
        when the tracker's lost-track buffer says (it counts time, not calls)."""
        frame_hw = (item.height, item.width)
        inferred = bool(item.parts)
        if inferred:
            found: list[sv.Detections] = []
            for part in item.parts:
                inference = self._result(part)
                self._tensors.append(part.tensor)
                if inference is None:  # stopped while the engine was unavailable: the frame is dropped
                    return
                self.times.add("infer", inference.engine_s / inference.batch)
                with self.times("postprocess"):
                    crop_hw = (part.window.y1 - part.window.y0, part.window.x1 - part.window.x0)
                    found.append(
                        regions.to_frame(
                            self.model.postprocess(inference.outputs, part.letterbox, crop_hw), part.window, frame_hw
                        )
                    )
            if item.parts[0].window != regions.full(frame_hw):
                with self.times("postprocess"):  # regions: merge them, and keep the still objects outside them
                    windows = [p.window for p in item.parts]
                    found.append(regions.outside(self._held, windows))
                    detections = regions.merge(found, self.model.iou)
            else:
                detections = found[0]
            self._held = detections
        else:
            detections = self._held
        events: list = []
        zones: list[list[str]] = []
        crossings: list[list[tuple[str, str]]] = []
        if self.events is not None:
            with self.times("track"):
                if self.tracker is None:
                    self.tracker = Tracker(self.cfg.tracker, self._rate)
                detections, alive = self.tracker.update(detections, timestamp=item.pts)
                events, zones, crossings = self.events.update(
                    detections, alive, item.capture_ts, (item.height, item.width)
                )
        with self.times("handoff"):
            result = FrameResult(
                camera=self.name,
                frame=item.index,
                pts=item.pts,
                capture_ts=item.capture_ts,
                width=item.width,
                height=item.height,
                detections=detections,
                events=events,
                zones=zones,
                crossings=crossings,
                image=item.image,
                fps=self._rate,
                inferred=inferred,
            )
            for sink in self.sinks:
                sink.submit(result)

        stats = self.stats
        stats.events += len(events)
        stats.tracks_in_view = len(self.events.active) if self.events is not None else len(detections)
        if not inferred:
            stats.gated += 1
            stats.recent_gated.append(time.monotonic())
            return
        stats.frames += 1
        stats.detections += len(detections)
        stats.recent.append(time.monotonic())
        stats.latency.append(time.time() - item.capture_ts)

    def _result(self, item: _Part) -> Inference | None:
        """The frame's outputs. While the engine is unavailable (an inference server down or restarting) the camera
        is `reconnecting`, like a camera that went away, and the frame is sent again until it runs; None if the
        camera is stopped meanwhile.

        A failed frame is first sent again at once, quietly: frames that were in flight when the server went away
        fail after it is back, and must not make the camera flap. Only a second failure is an outage."""
        backoff: Backoff | None = None
        while True:
            try:
                inference = item.future.result()
            except EngineUnavailable as exc:
                if backoff is None:
                    backoff = Backoff(initial=0.5, cap=10.0)
                else:
                    if self._engine_error is None:
                        self._engine_error = str(exc)
                        self._refresh()
                    if self._pause(backoff.next()):
                        return None
                item.future = self.stage.submit(item.tensor, camera=self.name)
                continue
            if self._engine_error is not None:  # it is back
                log.info("camera %r: inference is back", self.name)
                self._engine_error = None
                self._refresh()
            return inference

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds`, beating meanwhile (waiting for the engine is not hanging); True if stopped."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.heartbeat = time.monotonic()
            if self._stop.wait(min(left, 0.5)):
                return True
        return False

    def _tensor(self) -> np.ndarray:
        """A free input buffer (allocated through the stage: page-locked for CUDA engines)."""
        if self._tensors:
            return self._tensors.pop()
        h, w = self.model.imgsz
        return self.stage.allocate((1, 3, h, w), np.float32)

    def _processing_rate(self) -> float:
        src = self.source.source_fps or 30.0
        return min(src, self.cfg.fps) if self.cfg.fps else src

    def _finish(self) -> None:
        """End every open track, let each sink finish (end events, flush) and close, then the final state."""
        end_events = []
        if self.events is not None and self.events.active:
            end_events = self.events.finish(time.time())
            self.stats.events += len(end_events)
        self.heartbeat = None
        for sink in self.sinks:  # all drain at once: a failing sink's bounded wait does not add up
            sink.request_stop(end_events)
        for sink in self.sinks:
            sink.join(sink.drain_timeout + 30.0)
        self.error = self.error or self.source.error or self.sink_error
        self._set_state(CameraState.FAILED if self.error else CameraState.STOPPED, self.error)

    def _on_source(self, state: str, error: str | None) -> None:
        if CameraState(state).final or self._stop.is_set():
            return  # final: set by the worker once the sinks have drained (see _finish)
        with self._state_lock:
            self._source_state, self._source_error = CameraState(state), error
        self._refresh()

    def _on_sink(self, _sink: Sink) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """Publish the state the source and the sinks make together: streaming with a failing output is degraded."""
        with self._state_lock:
            if self.state.final:
                return
            state, error = self._source_state, self._source_error
            sink_error = self.sink_error
            if state == CameraState.STREAMING and self._engine_error is not None:
                state, error = CameraState.RECONNECTING, self._engine_error
            elif state == CameraState.STREAMING and sink_error is not None:
                state, error = CameraState.DEGRADED, sink_error
            self._publish(state, error)

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        with self._state_lock:
            self._publish(state, error)

    def _publish(self, state: CameraState, error: str | None) -> None:
        """Log and publish a state change, once per change, never the password (caller holds the lock)."""
        same = state == self.state and (state != CameraState.DEGRADED or error == self.status_error)
        if same and self._announced:
            return
        self._announced = True
        self.state, self.status_error = state, error
        where = redact_url(self.cfg.source.url)
        if state == CameraState.FAILED:
            log.error("camera %r (%s): failed: %s", self.name, where, error)
        elif state in (CameraState.RECONNECTING, CameraState.DEGRADED):
            log.warning("camera %r (%s): %s: %s", self.name, where, state, error)
        else:
            log.info("camera %r (%s): %s", self.name, where, state)
        if self.on_status is not None:
            self.on_status(self.name, state, error)
