"""What every sink receives, and the thread + bounded queue that keeps a slow or failing sink off the hot path."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import supervision as sv

from streamseg.sources.backoff import Backoff
from streamseg.vocab import RingPolicy

if TYPE_CHECKING:
    from streamseg.config.camera import CameraConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FrameResult:
    """One frame: tracked detections plus the track events it produced (see `inferred`)."""

    camera: str
    frame: int  # index of the frame in the decoded stream
    pts: float  # seconds within the stream
    capture_ts: float  # Unix epoch seconds
    width: int
    height: int
    detections: sv.Detections  # tracker_id set (-1 = not yet confirmed) when tracking is on
    events: list = field(default_factory=list)  # list[streamseg.tracking.events.TrackEvent]
    zones: list[list[str]] = field(default_factory=list)  # per detection: the zones it is in (after inertia)
    crossings: list[list[tuple[str, str]]] = field(default_factory=list)  # per detection: (line, in|out) now
    image: np.ndarray | None = None  # BGR copy of the frame, only when a sink needs_image
    fps: float = 0.0  # the camera's processing rate: the source's frame rate, capped by the config's `fps`
    encoded: dict = field(default_factory=dict)  # wire encodings of `detections`, shared by the sinks
    # False on a frame motion gating skipped: `detections` are the last processed frame's (nothing moved), no
    # detections message goes out for it, but its events do and a video still shows it.
    inferred: bool = True


SINK_STATES = ("ok", "failing")  # a sink's state in `{prefix}/stats` and the metrics


def waits_for_sinks(cfg: CameraConfig) -> bool:
    """Whether the camera's sinks make it wait rather than drop (block_when_full): files are batch jobs whose
    outputs should hold every frame; live cameras never wait (a failing sink is never waited for: see Sink)."""
    return cfg.source.policy == RingPolicy.BLOCK


# a sink's state in `{prefix}/stats` and the metrics


def describe_error(exc: BaseException, target: str = "") -> str:
    """An exception as the reason part of a message: `[Errno 28] No space left on device`.

    The file an OSError names is added unless `target` (what the message is about) already ends with it.
    """
    if isinstance(exc, OSError) and exc.strerror:
        reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else exc.strerror
        filename = None if exc.filename is None else str(exc.filename)
        return f"{reason}: {filename}" if filename and not target.endswith(filename) else reason
    return str(exc) or type(exc).__name__


class Sink(ABC):
    """A consumer of FrameResults running on its own thread.

    `submit` never blocks inference unless `block_when_full` is set (file pipelines, where the user wants
    every frame in the output and the source itself is paced by the pipeline); otherwise a full queue drops
    the result and counts it in `dropped`.

    A write that raises is retried, the same result again, with capped, jittered exponential backoff
    (sources.backoff: `retry_initial` doubling to `retry_max` seconds), so a transient failure (a full disk that
    is freed, a path that comes back) loses nothing. Meanwhile `error` names the output and the reason
    (`jsonl output /data/x.jsonl: [Errno 28] No space left on device`), `on_change` is called, new results
    queue up to the bound and the rest are dropped and counted, even with `block_when_full`: a camera never
    waits on a failing sink.
    `stop` drains what is queued, hands the camera's closing `end` events to `finish` (the end-of-stream
    hook), then closes; a sink still failing gives up after `timeout` seconds (counting what it could not
    write as dropped), so the end of a stream never hangs on a dead output.
    """

    # A class or instance attribute, or a property: the pipeline copies a frame when any sink says so, asked per frame.
    needs_image: bool = False
    kind: ClassVar[str] = "sink"
    retry_initial: float = 0.5
    retry_max: float = 30.0
    drain_timeout: float = 10.0  # default for stop(): how long a failing sink keeps trying at the end
    watchdog: ClassVar[bool] = True  # a write running past hang_timeout makes the camera hung (health.py)

    def __init__(self, camera: str, *, queue_size: int = 64, block_when_full: bool = False) -> None:
        self.camera = camera
        self.block_when_full = block_when_full
        self.written = 0  # results handled
        self.dropped = 0  # results lost: queue full, or still unwritten when a failing sink gave up at the end
        self.failures = 0  # failed write attempts, retries included
        self.error: str | None = None  # while failing: "<target>: <reason>"; None once a write succeeds again
        self.label: str | None = None  # overrides `target` in messages (e.g. the MQTT sink's outbox path)
        self.on_change: Callable[[Sink], None] | None = None  # called when `error` changes (on any thread)
        self.busy_s = 0.0  # time spent in write(), for bench per-stage figures
        self.busy_since: float | None = None  # monotonic start of the write() or finish() running now (health.py)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._end_events: list = []  # the camera's closing `end` events, for finish()
        self._deadline = math.inf  # monotonic time after which a failing sink gives up (set by request_stop)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.open()  # on the caller's thread, so a broken output shows at start-up
        except Exception as exc:  # the worker retries with the first result
            self._failed(exc)
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}:{self.camera}", daemon=True)
        self._thread.start()

    def submit(self, result: FrameResult) -> bool:
        # A batch job (block_when_full) waits for a healthy sink so its output is complete, but never for a
        # failing one: then results queue up to the bound and the rest are dropped, as for a live camera.
        while self.block_when_full and self.error is None:
            try:
                self._queue.put(result, timeout=0.1)
                return True
            except queue.Full:
                continue
        try:
            self._queue.put_nowait(result)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def request_stop(self, end_events: list | None = None, timeout: float | None = None) -> None:
        """Write what is queued, `finish(end_events)`, then close; a failing sink gives up after `timeout`
        (drain_timeout) seconds."""
        self._end_events = list(end_events or [])
        self._deadline = time.monotonic() + (self.drain_timeout if timeout is None else timeout)
        self._stopping.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to finish (request_stop first); False if it is still busy after `timeout`."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("camera %r: %s still busy (%d results queued)", self.camera, self.target, self.depth)
            return False
        self._thread = None
        return True

    def stop(self, end_events: list | None = None, timeout: float | None = None) -> None:
        """Drain what is queued, finish, then close (bounded: see request_stop)."""
        self.request_stop(end_events, timeout)
        self.join((self.drain_timeout if timeout is None else timeout) + 30.0)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def state(self) -> str:
        return "failing" if self.error is not None else "ok"

    @property
    def target(self) -> str:
        """What the sink writes to, for messages: `jsonl output /data/out.jsonl`."""
        return self.label or f"{self.kind} output"

    def outputs(self) -> list[Path]:
        """Files this run actually wrote data to (for the summary); none for sinks without files."""
        return []

    def stats(self) -> dict:
        return {
            "state": self.state,
            "error": self.error,
            "written": self.written,
            "dropped": self.dropped,
            "failures": self.failures,
        }

    # -- to implement ------------------------------------------------------------------------------
    def open(self) -> None:  # noqa: B027 - optional hook
        """Called on the caller's thread before the worker starts (open files, connect)."""

    @abstractmethod
    def write(self, result: FrameResult) -> None:
        """Handle one result (on the sink's thread). Raising means "not written": the same result comes again."""

    def finish(self, end_events: list) -> None:  # noqa: B027 - optional hook
        """End of stream (on the sink's thread, after the last result): the `end` events of the tracks still
        open when the camera stopped. Raising means "not written", as for write()."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release (on the sink's thread, after the queue is drained)."""

    # -- worker ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._stopping.is_set():
                    continue
                if self._end_events and not self._deliver(self.finish, self._end_events):
                    log.error("camera %r: %s: gave up, the closing end events not written", self.camera, self.error)
                break
            if self._deliver(self.write, item):
                self.written += 1
            else:  # failing and past the end-of-stream deadline
                lost = 1 + self._discard()
                self.dropped += lost
                log.error("camera %r: %s: gave up, %d result(s) not written", self.camera, self.error, lost)
                break
        try:
            self.close()
        except Exception as exc:
            self._failed(exc)

    def _deliver(self, handle: Callable[[Any], None], item: Any) -> bool:
        """`handle(item)` (write or finish), retrying with backoff; False when giving up (past the deadline)."""
        backoff = Backoff(self.retry_initial, self.retry_max)  # jitter: outputs that failed together retry apart
        while True:
            t0 = time.perf_counter()
            self.busy_since = time.monotonic()
            try:
                handle(item)
            except Exception as exc:  # one broken sink must not take the camera down
                self.busy_since = None
                self.busy_s += time.perf_counter() - t0
                self.failures += 1
                self._failed(exc)
                delay = backoff.next()
                if not self._stopping.is_set():
                    self._stopping.wait(delay)  # stop() cuts the wait short: one more try at once
                else:
                    left = self._deadline - time.monotonic()
                    if left <= 0:
                        return False
                    time.sleep(min(delay, left))
                continue
            self.busy_since = None
            self.busy_s += time.perf_counter() - t0
            if self.error is not None:
                log.warning(
                    "camera %r: %s: writing again (%d failed attempt(s), %d result(s) dropped so far)",
                    self.camera,
                    self.target,
                    self.failures,
                    self.dropped,
                )
                self._set_error(None)
            return True

    def _failed(self, exc: BaseException) -> None:
        target = self.target
        error = f"{target}: {describe_error(exc, target)}"
        if error != self.error:  # once per distinct error, not once per retry
            log.error("camera %r: %s (retrying)", self.camera, error)
            self._set_error(error)

    def _set_error(self, error: str | None) -> None:
        self.error = error
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("camera %r: sink state listener failed", self.camera)

    def _discard(self) -> int:
        n = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return n
            n += 1
