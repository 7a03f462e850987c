"""Where ring-buffer slots live: page-locked (pinned) host memory when CUDA is there, else plain numpy arrays.

Pinned slots let a GPU engine copy frames to the device asynchronously. pycuda is optional and imported
lazily; any failure (not installed, no driver, no device) means plain memory.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from streamseg.sources.ring import Allocator

log = logging.getLogger(__name__)


@functools.cache
def frame_allocator() -> Allocator:
    """The allocator every camera's ring uses (decided once per process)."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return np.empty
        ctx = cuda.Device(0).retain_primary_context()
    except Exception as exc:  # ImportError, or pycuda's own errors when there is no driver
        log.debug("ring buffers in plain memory (no CUDA: %s)", exc)
        return np.empty

    def pinned(shape: tuple[int, ...], dtype: type) -> np.ndarray:
        # Decoder threads allocate: make the primary context current around the call (as the TensorRT
        # engine does); PORTABLE makes the pages pinned for every context in the process.
        ctx.push()
        try:
            return cuda.pagelocked_empty(shape, dtype, mem_flags=cuda.host_alloc_flags.PORTABLE)
        finally:
            ctx.pop()

    log.info("ring buffers in page-locked memory (CUDA)")
    return pinned
