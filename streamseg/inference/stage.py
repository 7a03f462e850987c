"""One inference stage per engine: every camera that uses the model feeds it, `workers` engine calls run at once.

Each worker owns one engine instance (an onnxruntime session with its share of the cores; on a GPU an
execution context with its own CUDA stream), takes up to `batch_size` queued frames, from any camera, waiting
at most `batch_timeout` for the batch to fill, and runs them as one call. A camera keeps a few frames in
flight and reads the results back in its own frame order (futures, oldest first), so the preprocessing of its
next frame and the decoding of its previous one overlap this one's inference.

On a CPU, sessions with one share of the cores each give the most frames a second when frames queue up, but a
frame that comes alone (a live camera the engine keeps up with) would run on that share only. So the stage may
also hold a `solo` engine with every core: a worker that finds itself alone, nothing else queued or running,
runs its frame there (measured on 2 cores: 21-22 ms a frame against 33-34 ms on one core).

Fair rates: the queue is one line per camera, served in turn (round robin, a frame each), not first come first
served. When the cameras together want more than the engine gives, each gets an equal share of the calls, and a
camera that wants less than its share (a still one, motion-gated) gets all it asks for at once: busy cameras are
the ones slowed, a camera waking up waits for at most one frame of each other camera, and none starves. With
`on_full: latest` (live sources) a camera that is slowed takes its newest frame each time, so its latency stays
bounded and the frames it cannot have are dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from streamseg.engines.base import Engine, ModelInfo

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True, slots=True)
class Inference:
    """What a camera gets back for one frame: the raw outputs (batch axis of 1) and what the call cost."""

    outputs: list[np.ndarray]
    engine_s: float  # wall time of the engine call that ran this frame (shared by its whole batch)
    batch: int  # frames in that call


@dataclass(slots=True)
class _Request:
    tensor: np.ndarray  # (1, 3, H, W)
    future: Future = field(default_factory=Future)


class FairQueue:
    """Requests in one line per camera, taken in turn: put(camera, item); get(timeout) -> item, or `_STOP` once
    the lines are empty and a stop was put; raises queue.Empty on timeout. Thread-safe."""

    def __init__(self) -> None:
        self._lines: dict[str, deque] = {}
        self._turns: deque[str] = deque()  # cameras with something queued, the next one to serve first
        self._stops = 0
        self._size = 0
        self._cond = threading.Condition()

    def put(self, camera: str, item: object) -> None:
        with self._cond:
            line = self._lines.get(camera)
            if line is None:
                line = self._lines[camera] = deque()
                self._turns.append(camera)
            line.append(item)
            self._size += 1
            self._cond.notify()

    def put_stop(self) -> None:
        """One worker stops once everything queued before and after is taken."""
        with self._cond:
            self._stops += 1
            self._cond.notify()

    def get(self, timeout: float | None = None) -> object:
        with self._cond:
            if not self._cond.wait_for(lambda: self._turns or self._stops, timeout):
                raise queue.Empty
            if not self._turns:
                self._stops -= 1
                return _STOP
            camera = self._turns.popleft()
            line = self._lines[camera]
            item = line.popleft()
            self._size -= 1
            if line:
                self._turns.append(camera)  # its next frame waits for one of each other camera's
            else:
                del self._lines[camera]
            return item

    def qsize(self) -> int:
        with self._cond:
            return self._size

    def empty(self) -> bool:
        return self.qsize() == 0

    def depth(self, camera: str) -> int:
        """Frames of `camera` waiting."""
        with self._cond:
            line = self._lines.get(camera)
            return len(line) if line else 0


@dataclass
class StageStats:
    calls: int = 0
    frames: int = 0
    busy_s: float = 0.0  # summed over workers
    batches: dict[int, int] = field(default_factory=dict)  # batch size -> calls


class InferenceStage:
    """submit(tensor) -> Future[Inference]; start() / close(). Thread-safe: every camera submits from its thread.

    `engines`: one per worker, all the same model. A batch the engine rejects is retried frame by frame, so a
    frame that breaks the engine fails only the camera that sent it.
    """

    def __init__(
        self,
        engines: Sequence[Engine],
        *,
        batch_size: int = 1,
        batch_timeout: float = 0.010,
        solo: Engine | None = None,
        name: str = "",
    ) -> None:
        if not engines:
            raise ValueError("an inference stage needs at least one engine")
        self.engines = list(engines)
        self.solo = solo  # the same model on every core, for a frame that comes alone (see the module docstring)
        self.info: ModelInfo = self.engines[0].info
        self.name = name or self.info.path.name
        self.batch_size = max(1, batch_size) if self.info.batch == -1 else 1  # a static graph takes its own batch
        if batch_size > 1 and self.batch_size == 1:
            log.warning(
                "model %s has a fixed batch of %d: batch_size %d ignored (export it with a dynamic batch axis)",
                self.info.path.name,
                self.info.batch,
                batch_size,
            )
        self.batch_timeout = batch_timeout
        self.stats = StageStats()
        self._queue = FairQueue()
        self._lock = threading.Lock()
        self._running = 0  # workers running an engine call now (under _lock)
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def workers(self) -> int:
        return len(self.engines)

    @property
    def depth(self) -> int:
        """Frames one camera should keep in flight to keep every worker busy, plus one being prepared."""
        return min(self.workers * self.batch_size + 1, 16)

    @property
    def queued(self) -> int:
        """Frames waiting for a worker."""
        return self._queue.qsize()

    @property
    def engine_name(self) -> str:
        return self.engines[0].name

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A host buffer the engine reads fast (page-locked for CUDA engines), for frames and input tensors."""
        return self.engines[0].allocate(shape, dtype)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> InferenceStage:
        if not self._threads:
            for i, engine in enumerate(self.engines):
                thread = threading.Thread(target=self._work, args=(engine,), name=f"infer:{self.name}:{i}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def submit(self, tensor: np.ndarray, camera: str = "") -> Future:
        """Queue one frame in `camera`'s line (cameras are served in turn, see the module docstring)."""
        request = _Request(tensor)
        if self._closed:
            request.future.set_exception(RuntimeError(f"inference stage {self.name} is closed"))
        else:
            self._queue.put(camera, request)
        return request.future

    def queued_for(self, camera: str) -> int:
        """Frames of `camera` waiting for a worker."""
        return self._queue.depth(camera)

    def close(self) -> None:
        """Finish what is queued, stop the workers, release the engines."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put_stop()
        for thread in self._threads:
            thread.join(30)
        self._threads.clear()
        for engine in self.engines:
            engine.close()
        if self.solo is not None:
            self.solo.close()

    # -- workers -------------------------------------------------------------------------------------
    def _work(self, engine: Engine) -> None:
        buffer: np.ndarray | None = None  # this worker's batch input, allocated by the engine
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = self._gather(batch)
            if len(batch) == 1:
                tensor = first.tensor
            else:
                shape = (self.batch_size, *first.tensor.shape[1:])
                if buffer is None or buffer.shape != shape:
                    buffer = engine.allocate(shape, first.tensor.dtype)
                tensor = buffer[: len(batch)]
                for i, request in enumerate(batch):
                    tensor[i] = request.tensor[0]
            self._run(engine, batch, tensor)
            if stop:
                return

    def _alone(self, own: Engine) -> Engine:
        """The engine for the call this worker is about to make: the solo engine when nothing else is running or
        queued (the frame gets every core), else the worker's own (the cores are shared)."""
        with self._lock:
            alone = self.solo is not None and self._running == 0 and self._queue.empty()
            self._running += 1
        return self.solo if alone else own

    def _gather(self, batch: list[_Request]) -> bool:
        """Add queued frames to `batch` up to batch_size, waiting at most batch_timeout. True: stop seen."""
        if self.batch_size == 1:
            return False
        deadline = time.monotonic() + self.batch_timeout
        while len(batch) < self.batch_size:
            try:
                request = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if request is _STOP:
                return True
            batch.append(request)
        return False

    def _run(self, own: Engine, batch: list[_Request], tensor: np.ndarray) -> None:
        """Run one engine call for `batch` (on `own`, the worker's engine, or the solo one) and settle its futures."""
        engine = self._alone(own)
        t0 = time.perf_counter()
        try:
            outputs = engine.infer(tensor)
        except Exception as exc:
            with self._lock:
                self._running -= 1
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # Which frame broke it? Retry one by one so that only its camera fails.
            for request in batch:
                self._run(own, [request], request.tensor)
            return
        elapsed = time.perf_counter() - t0
        n = len(batch)
        with self._lock:
            self._running -= 1
            stats = self.stats
            stats.calls += 1
            stats.frames += n
            stats.busy_s += elapsed
            stats.batches[n] = stats.batches.get(n, 0) + 1
        for i, request in enumerate(batch):
            mine = outputs if n == 1 else [o[i : i + 1] for o in outputs]
            request.future.set_result(Inference(mine, elapsed, n))
