"""A fixed set of preallocated frame slots between one decoding thread and one consumer thread.

Slot life cycle: free -> (producer) writing -> ready -> (consumer) in use -> free on `Frame.release()`.
The arrays are allocated on first use and reallocated per slot when the resolution changes, so a
frame already handed out keeps its own (old-size) array. With ``policy="drop_oldest"`` a producer
that finds no free slot takes back the oldest *ready* frame instead of waiting, which keeps the
latency of a live camera bounded when the consumer falls behind. ``policy="latest"`` does the same and
the consumer always gets the newest ready frame, the older ones being dropped: what a live camera wants,
since a frame that waited behind others is stale by the time it is processed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from streamseg.sources.frame import Frame
from streamseg.vocab import RingPolicy

Allocator = Callable[[tuple[int, ...], type], np.ndarray]


class RingBuffer:
    """Preallocated HxWx3 uint8 slots; see the module docstring for the protocol.

    Producer: ``slot, array = acquire(shape)``, write into ``array``, ``publish(slot, ...)``; or
    ``put(image, ...)`` which does the three with one copy. ``end()`` signals end of stream.
    Consumer: ``get(timeout)`` returns a Frame (call ``release()`` when done) or None; once it
    returns None and ``done`` is true, no frame will ever come again.
    ``close()`` aborts both sides: blocked calls return None at once.

    `allocator(shape, dtype)` makes the slot arrays: pass ``pycuda.driver.pagelocked_empty`` for
    pinned memory so host-to-device copies can be asynchronous.
    """

    def __init__(
        self, slots: int = 4, policy: RingPolicy | str = RingPolicy.BLOCK, allocator: Allocator = np.empty
    ) -> None:
        if slots < 2:
            raise ValueError("a ring buffer needs at least 2 slots (one being written, one being read)")
        if policy not in tuple(RingPolicy):
            raise ValueError(f"unknown ring policy {policy!r}: expected one of {', '.join(RingPolicy)}")
        self.slots = slots
        self.policy = RingPolicy(policy)
        self.dropped = 0  # frames overwritten or skipped before the consumer saw them (drop_oldest, latest)
        self._allocator = allocator
        self._arrays: list[np.ndarray | None] = [None] * slots
        self._free: deque[int] = deque(range(slots))
        self._ready: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._ended = False
        self._closed = False

    # -- producer ----------------------------------------------------------------------------------
    def acquire(self, shape: tuple[int, int, int], timeout: float | None = None) -> tuple[int, np.ndarray] | None:
        """A slot to write one frame of `shape` into, or None on timeout / after close()."""
        with self._cond:
            if not self._cond.wait_for(self._can_acquire, timeout) or self._closed:
                return None
            if self._free:
                slot = self._free.popleft()
            else:  # drop_oldest / latest with nothing free: take back the oldest frame nobody has read yet
                slot = self._ready.popleft().slot
                self.dropped += 1
            array = self._arrays[slot]
            if array is None or array.shape != shape:
                array = self._allocator(shape, np.uint8)
                self._arrays[slot] = array
            return slot, array

    def publish(self, slot: int, *, camera: str, index: int, pts: float, capture_ts: float) -> None:
        """Hand a written slot to the consumer."""
        with self._cond:
            if self._closed:
                self._free.append(slot)
                return
            image = self._arrays[slot]
            assert image is not None
            frame = Frame(camera, index, pts, capture_ts, image, slot=slot, _release=self._release)
            self._ready.append(frame)
            self._cond.notify_all()

    def put(
        self,
        image: np.ndarray,
        *,
        camera: str,
        index: int,
        pts: float,
        capture_ts: float,
        timeout: float | None = None,
    ) -> bool:
        """Copy `image` into a slot and publish it; False on timeout or when closed."""
        got = self.acquire(image.shape, timeout)  # type: ignore[arg-type]
        if got is None:
            return False
        slot, array = got
        np.copyto(array, image)
        self.publish(slot, camera=camera, index=index, pts=pts, capture_ts=capture_ts)
        return True

    def end(self) -> None:
        """End of stream: the consumer drains what is ready, then sees `done`."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    # -- consumer ----------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest ready frame (the newest with policy "latest", the others dropped), or None on timeout, at
        end of stream, or after close()."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._ended or self._closed, timeout)
            if self._closed or not self._ready:
                return None
            if self.policy == RingPolicy.LATEST:
                while len(self._ready) > 1:
                    self._free.append(self._ready.popleft().slot)
                    self.dropped += 1
                self._cond.notify_all()  # slots are free again
            return self._ready.popleft()

    @property
    def done(self) -> bool:
        """True once no frame will ever come: closed, or ended with every ready frame taken."""
        with self._cond:
            return self._closed or (self._ended and not self._ready)

    @property
    def depth(self) -> int:
        """Frames published and not yet taken by the consumer."""
        with self._cond:
            return len(self._ready)

    # -- both --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Abort: wake every blocked acquire/get; frames not yet taken are discarded."""
        with self._cond:
            self._closed = True
            self._free.extend(frame.slot for frame in self._ready)
            self._ready.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def _can_acquire(self) -> bool:
        if self._closed or self._free:
            return True
        return self.policy != RingPolicy.BLOCK and bool(self._ready)

    def _release(self, slot: int) -> None:
        with self._cond:
            self._free.append(slot)
            self._cond.notify_all()
