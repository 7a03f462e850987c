"""Motion on a camera's frames, cheaply: a small grey copy of each frame compared with the previous one.

    MotionDetector(cfg)(image_bgr) -> Motion(boxes)

The frame is sampled down to `motion.width` (nearest pixels), turned grey and blurred a little (so that
compression noise is not motion); the pixels that changed by more than `threshold` grey levels from the previous
frame, outside the `mask` polygons, are grown into blobs, and each blob of at least `min_area` (a fraction of the
frame) is a moving area, returned as a box in full-frame pixels. The first frame, and a frame whose size changed,
is all motion: there is nothing to compare it with. Measured with tools/motion_bench.py (README, "Motion").
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamseg.config.motion import MotionConfig

_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True, slots=True)
class Motion:
    """What moved in one frame: boxes (n, 4) xyxy in full-frame pixels, float32; none when the frame is still."""

    boxes: np.ndarray

    @property
    def moving(self) -> bool:
        return len(self.boxes) > 0


class MotionDetector:
    """One per camera (it keeps the previous frame); not thread-safe."""

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._shape: tuple[int, int] | None = None  # full frame (h, w) the state below is for
        self._small: tuple[int, int] = (0, 0)  # (w, h) of the grey copy
        self._keep: np.ndarray | None = None  # 255 where motion counts, 0 under the mask; None without a mask
        self._previous: np.ndarray | None = None
        self._min_px = 0.0

    def __call__(self, image_bgr: np.ndarray) -> Motion:
        h, w = image_bgr.shape[:2]
        if self._shape != (h, w):
            self._reset((h, w))
        # Nearest-pixel sampling reads only the pixels it keeps (a bilinear or area resize of a 1080p frame costs
        # 1-2 ms in memory traffic alone); the blur then averages the samples, so noise and aliasing are not motion.
        grey = cv2.cvtColor(cv2.resize(image_bgr, self._small, interpolation=cv2.INTER_NEAREST), cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (5, 5), 0)
        previous, self._previous = self._previous, grey
        if previous is None:
            return Motion(np.array([[0, 0, w, h]], np.float32))
        _, changed = cv2.threshold(cv2.absdiff(grey, previous), self.cfg.threshold, 255, cv2.THRESH_BINARY)
        if self._keep is not None:
            cv2.bitwise_and(changed, self._keep, dst=changed)
        if not changed.any():
            return Motion(np.empty((0, 4), np.float32))
        changed = cv2.dilate(changed, _KERNEL, iterations=2)
        contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        sx, sy = w / self._small[0], h / self._small[1]
        boxes = []
        for contour in contours:
            x, y, bw, bh = cv2.boundingRect(contour)
            if bw * bh >= self._min_px and cv2.contourArea(contour) >= self._min_px:
                boxes.append((x * sx, y * sy, min((x + bw) * sx, w), min((y + bh) * sy, h)))
        return Motion(np.array(boxes, np.float32).reshape(-1, 4))

    def _reset(self, shape: tuple[int, int]) -> None:
        h, w = shape
        small_w = min(self.cfg.width, w)
        small_h = max(1, round(h * small_w / w))
        self._shape, self._small, self._previous = shape, (small_w, small_h), None
        self._min_px = self.cfg.min_area * small_w * small_h
        self._keep = None
        if self.cfg.mask:
            keep = np.full((small_h, small_w), 255, np.uint8)
            scale = np.array([small_w / w, small_h / h])
            polygons = [np.round(np.asarray(p, np.float64) * scale).astype(np.int32) for p in self.cfg.mask]
            cv2.fillPoly(keep, polygons, 0)
            self._keep = keep
