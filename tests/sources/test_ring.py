"""RingBuffer protocol, one producer and one consumer thread (no timing assertions)."""

import threading

import numpy as np
import pytest

from streamseg.sources.ring import RingBuffer

SHAPE = (4, 6, 3)


def _image(value: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    return np.full(shape, value % 256, dtype=np.uint8)


def _put(ring: RingBuffer, i: int, shape: tuple[int, int, int] = SHAPE, timeout: float | None = 10) -> bool:
    return ring.put(_image(i, shape), camera="cam", index=i, pts=i / 25, capture_ts=0.0, timeout=timeout)


def test_block_policy_loses_nothing_under_a_slow_consumer() -> None:
    ring = RingBuffer(3, "block")
    n = 200

    def produce() -> None:
        for i in range(n):
            assert _put(ring, i)
        ring.end()

    producer = threading.Thread(target=produce)
    producer.start()
    seen = []
    gate = threading.Event()
    while True:
        frame = ring.get(timeout=10)
        if frame is None:
            assert ring.done
            break
        gate.wait(0.001)  # a consumer slower than the producer: the ring is full most of the time
        assert frame.image.shape == SHAPE
        assert (frame.image == frame.index % 256).all()  # the slot was not overwritten under us
        seen.append(frame.index)
        frame.release()
    producer.join(10)
    assert seen == list(range(n))
    assert ring.dropped == 0


def test_drop_oldest_keeps_the_newest_and_counts_drops() -> None:
    ring = RingBuffer(3, "drop_oldest")
    for i in range(10):
        assert _put(ring, i, timeout=0)  # never waits: nothing is consumed
    ring.end()
    frames = [ring.get(timeout=0) for _ in range(3)]
    assert [f.index for f in frames] == [7, 8, 9]
    assert all((f.image == f.index).all() for f in frames)
    assert ring.dropped == 7
    assert ring.get(timeout=0) is None and ring.done


def test_drop_oldest_never_touches_a_frame_the_consumer_holds() -> None:
    ring = RingBuffer(2, "drop_oldest")
    _put(ring, 0)
    held = ring.get(timeout=0)
    for i in range(1, 5):
        assert _put(ring, i, timeout=0)
    assert (held.image == 0).all()
    assert ring.get(timeout=0).index == 4
    assert ring.dropped == 3
    # Both slots are now held by the consumer: even drop_oldest has to wait.
    assert not _put(ring, 5, timeout=0)


def test_latest_hands_out_the_newest_frame_and_drops_the_older_ones() -> None:
    ring = RingBuffer(4, "latest")
    for i in range(3):
        assert _put(ring, i, timeout=0)
    newest = ring.get(timeout=0)
    assert newest.index == 2 and (newest.image == 2).all()
    assert ring.dropped == 2  # frames 0 and 1 were never seen
    # Their slots are free again: the decoder writes without taking back a waiting frame.
    for i in range(3, 6):
        assert _put(ring, i, timeout=0)
    assert ring.dropped == 2
    assert ring.get(timeout=0).index == 5
    assert ring.dropped == 4
    newest.release()
    ring.end()
    assert ring.get(timeout=0) is None and ring.done


def test_latest_never_waits_and_never_touches_a_held_frame() -> None:
    ring = RingBuffer(2, "latest")
    _put(ring, 0)
    held = ring.get(timeout=0)
    for i in range(1, 5):
        assert _put(ring, i, timeout=0)  # the one free slot is taken back each time
    assert (held.image == 0).all()
    assert ring.get(timeout=0).index == 4
    assert ring.dropped == 3


def test_resolution_change_reallocates() -> None:
    ring = RingBuffer(2, "block")
    small, large = (4, 6, 3), (8, 10, 3)
    _put(ring, 1, small)
    first = ring.get(timeout=0)
    _put(ring, 2, large)
    second = ring.get(timeout=0)
    assert first.image.shape == small and (first.image == 1).all()  # untouched by the larger frame
    assert second.image.shape == large and (second.image == 2).all()
    first.release()
    second.release()
    for i in range(3, 7):  # every slot ends up at the new size
        _put(ring, i, large)
        frame = ring.get(timeout=0)
        assert frame.image.shape == large and (frame.image == i).all()
        frame.release()


def test_allocator_hook_is_used_for_slots() -> None:
    calls = []

    def allocator(shape: tuple[int, ...], dtype: type) -> np.ndarray:
        calls.append((shape, dtype))
        return np.zeros(shape, dtype)

    ring = RingBuffer(2, "block", allocator=allocator)
    for i in range(5):
        _put(ring, i)
        ring.get(timeout=0).release()
    assert calls == [(SHAPE, np.uint8)] * 2  # once per slot, reused afterwards


def test_release_is_idempotent() -> None:
    ring = RingBuffer(2, "block")
    _put(ring, 0)
    frame = ring.get(timeout=0)
    frame.release()
    frame.release()  # must not hand the same slot out twice
    assert _put(ring, 1, timeout=0) and _put(ring, 2, timeout=0)
    assert not _put(ring, 3, timeout=0)


def _in_thread(fn) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def test_close_wakes_a_blocked_get() -> None:
    ring = RingBuffer(2, "block")
    thread, out = _in_thread(lambda: ring.get(timeout=30))
    ring.close()
    thread.join(10)
    assert not thread.is_alive() and out == [None]
    assert ring.done


def test_close_wakes_a_blocked_put() -> None:
    ring = RingBuffer(2, "block")
    _put(ring, 0)
    _put(ring, 1)
    thread, out = _in_thread(lambda: _put(ring, 2, timeout=30))
    ring.close()
    thread.join(10)
    assert not thread.is_alive() and out == [False]


def test_end_lets_the_consumer_drain_first() -> None:
    ring = RingBuffer(3, "block")
    _put(ring, 0)
    _put(ring, 1)
    ring.end()
    assert not ring.done
    assert [ring.get(timeout=0).index, ring.get(timeout=0).index] == [0, 1]
    assert ring.get(timeout=30) is None  # returns at once: the stream is over
    assert ring.done


@pytest.mark.parametrize(("slots", "policy"), [(1, "block"), (3, "newest")])
def test_bad_arguments(slots: int, policy: str) -> None:
    with pytest.raises(ValueError):
        RingBuffer(slots, policy)  # type: ignore[arg-type]
