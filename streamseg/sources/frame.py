"""The unit a source hands to the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Frame:
    """One decoded frame.

    `image` is an HxWx3 uint8 BGR array. When it comes from a ring buffer it is a view of a
    preallocated slot: it stays valid until `release()` is called, after which the slot is reused.
    """

    camera: str
    index: int  # position of the frame in the decoded stream (0-based, before any fps skipping)
    pts: float  # presentation time in seconds within the stream
    capture_ts: float  # Unix epoch seconds when the frame was decoded (received)
    image: np.ndarray
    slot: int = -1  # ring-buffer slot index, -1 when the frame owns its array
    _release: object = None  # callable(slot) set by the ring buffer

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def release(self) -> None:
        """Give the slot back to the ring buffer (no-op for frames that own their array)."""
        if self._release is not None and self.slot >= 0:
            self._release(self.slot)  # type: ignore[operator]
            self._release = None
