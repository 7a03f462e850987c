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


class FlakySink(Sink):
    """Fails its first `failures` write attempts with a real OSError, then writes."""

    kind = "flaky"
    retry_initial = 0.01
    retry_max = 0.05

    def __init__(self, failures: int, **kw) -> None:
        super().__init__("cam", **kw)
        self.left = failures
        self.frames: list[int] = []
        self.changes: list[str | None] = []
        self.on_change = lambda sink: self.changes.append(sink.error)

    def write(self, result: FrameResult) -> None:
        if self.left:
            self.left -= 1
            raise OSError(28, "No space left on device")
        self.frames.append(result.frame)


def test_a_failing_sink_retries_the_same_result_and_loses_nothing() -> None:
    sink = FlakySink(5, queue_size=64)
    sink.start()
    for i in range(20):
        assert sink.submit(result(i))
    sink.stop()
    assert sink.frames == list(range(20)) and sink.written == 20 and sink.dropped == 0
    assert sink.failures == 5 and sink.error is None and sink.state == "ok"
    # one notice when it started failing (naming the output and the OS reason), one when it wrote again
    assert sink.changes == ["flaky output: [Errno 28] No space left on device", None]


def test_a_dead_sink_never_blocks_the_producer_and_gives_up_when_stopped() -> None:
    sink = FlakySink(10**9, queue_size=4, block_when_full=True)  # a batch job's sink that never recovers
    sink.start()
    done = threading.Event()

    def produce() -> None:
        for i in range(20):
            sink.submit(result(i))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert done.wait(5)  # the producer is never stuck behind a failing sink
    assert sink.state == "failing" and sink.error == "flaky output: [Errno 28] No space left on device"
    t0 = time.monotonic()
    sink.stop(timeout=0.2)  # the end of the stream: bounded, not forever
    assert time.monotonic() - t0 < 5
    assert sink.frames == [] and sink.written == 0
    assert sink.dropped == 20  # every result is accounted for: the queue overflow and what it gave up on
    assert sink.failures >= 2 and sink.error is not None
