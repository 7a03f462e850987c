"""Stage timing through one context manager (in the spirit of Ultralytics' ops.Profile), for stats and bench."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimes:
    """Seconds spent per named stage, summed; `with times("postprocess"): ...` adds one measurement.

    Thread-safe, so stages running on different threads (a camera's worker, its sinks) can share one.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
            self.counts[stage] = self.counts.get(stage, 0) + count

    def ms(self, stage: str) -> float:
        """Mean milliseconds per measurement of `stage` (0 when never measured)."""
        with self._lock:
            n = self.counts.get(stage, 0)
            return 1000.0 * self.seconds.get(stage, 0.0) / n if n else 0.0

    def ms_per_call(self) -> dict[str, float]:
        with self._lock:
            return {k: 1000.0 * v / max(self.counts[k], 1) for k, v in self.seconds.items()}
