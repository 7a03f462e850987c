"""A fake engine with the real YOLO segment output layout, for testing the stage, pipeline and daemon without
any model file.

Each image of a batch gets one `person` box whose centre x encodes the image's mean pixel value (so a test can
tell which frame a detection came from), a mask covering the box, and nothing else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamseg.engines.base import Engine, ModelInfo

IMGSZ = 320
ANCHORS = 2100  # 320 px at strides 8, 16, 32
NAMES = {0: "person", 1: "bicycle", 2: "car"}
NM = 32


def fake_info(batch: int = 1, path: Path = Path("fake-seg.onnx")) -> ModelInfo:
    nc = len(NAMES)
    return ModelInfo(
        path=path,
        task="segment",
        names=dict(NAMES),
        imgsz=(IMGSZ, IMGSZ),
        batch=batch,
        output_names=("output0", "output1"),
        output_shapes=(
            (None if batch == -1 else batch, 4 + nc + NM, ANCHORS),
            (None if batch == -1 else batch, NM, 80, 80),
        ),
    )


def box_x(image_mean: float) -> float:
    """Centre x (input pixels) of the box the fake engine reports for an input whose mean is `image_mean`."""
    return 40.0 + 240.0 * float(image_mean)


class FakeEngine(Engine):
    """infer(images) -> fixed YOLO tensors; optional per-call `delay` and `fail` (a predicate on the batch)."""

    def __init__(
        self,
        *,
        batch: int = 1,
        delay: float = 0.0,
        fail: Callable[[np.ndarray], bool] | None = None,
        name: str = "fake",
    ) -> None:
        self.info = fake_info(batch)
        self.name = name
        self.delay = delay
        self.fail = fail
        self.calls: list[int] = []  # batch size of every call
        self.closed = False
        self._busy = threading.Lock()

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        if not self._busy.acquire(blocking=False):
            raise AssertionError("FakeEngine.infer called from two threads at once")
        try:
            if self.info.batch != -1 and images.shape[0] != self.info.batch:
                raise ValueError(f"fixed batch {self.info.batch}, got {images.shape[0]}")
            if self.delay:
                time.sleep(self.delay)
            if self.fail is not None and self.fail(images):
                raise RuntimeError("fake engine failure")
            self.calls.append(images.shape[0])
            return yolo_outputs([float(im.mean()) for im in images])
        finally:
            self._busy.release()

    def close(self) -> None:
        self.closed = True


def yolo_outputs(means: list[float]) -> list[np.ndarray]:
    n, nc = len(means), len(NAMES)
    pred = np.zeros((n, 4 + nc + NM, ANCHORS), np.float32)
    for i, mean in enumerate(means):
        pred[i, :4, 0] = (box_x(mean), 160.0, 40.0, 80.0)  # cx, cy, w, h in input pixels
        pred[i, 4, 0] = 0.9  # class 0 (person)
        pred[i, 4 + nc, 0] = 1.0  # mask coefficient 0 ...
    protos = np.zeros((n, NM, 80, 80), np.float32)
    protos[:, 0] = 1.0  # ... times prototype 0 = +1 everywhere: the mask fills the box
    return [pred, protos]
