"""The sink thread contract: a slow sink never blocks inference (unless asked to), a broken one fails alone."""

from __future__ import annotations

import threading
import time

import supervision as sv

from streamseg.sinks.base import FrameResult, Sink


class SlowSink(Sink):
    kind = "slow"

    def __init__(self, delay: float, **kw) -> None:
        super().__init__("cam", **kw)
        self.delay = delay
        self.frames: list[int] = []
        self.closed = False

    def write(self, result: FrameResult) -> None:
        time.sleep(self.delay)
        if result.frame < 0:
            raise RuntimeError("disk full")
        self.frames.append(result.frame)

    def close(self) -> None:
        self.closed = True


def result(i: int) -> FrameResult:
    return FrameResult("cam", i, i / 25, time.time(), 64, 48, sv.Detections.empty())


def test_full_queue_drops_instead_of_blocking() -> None:
    sink = SlowSink(0.05, queue_size=4)
    sink.start()
    t0 = time.perf_counter()
    accepted = [sink.submit(result(i)) for i in range(50)]
    assert time.perf_counter() - t0 < 0.5  # 50 frames of a 50 ms sink: the producer never waited for it
    sink.stop()
    assert sink.dropped == accepted.count(False) > 30
    assert sink.frames == [i for i, ok in enumerate(accepted) if ok]  # what was accepted is written, in order
    assert sink.closed


def test_block_when_full_loses_nothing() -> None:
    sink = SlowSink(0.002, queue_size=2, block_when_full=True)
    sink.start()
    for i in range(100):
        assert sink.submit(result(i))
    sink.stop()
    assert sink.frames == list(range(100)) and sink.dropped == 0 and sink.written == 100


def test_a_failing_sink_records_its_error_and_releases_a_blocked_producer() -> None:
    sink = SlowSink(0.0, queue_size=1, block_when_full=True)
    sink.start()
    sink.submit(result(-1))  # raises in write()
    done = threading.Event()

    def produce() -> None:
        for i in range(20):
            sink.submit(result(i))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert done.wait(5)  # the producer is never stuck behind a dead sink
    sink.stop()
    assert sink.error is not None and "disk full" in sink.error and "slow sink for camera 'cam'" in sink.error
    assert sink.frames == []
