"""Letterbox against the straightforward Ultralytics recipe (resize, copyMakeBorder, RGB, CHW, /255)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamseg.models.letterbox import Letterbox, letterbox, scale_boxes_to_image


def _ultralytics_style(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    r = min(size[0] / h, size[1] / w)
    new_unpad = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (size[1] - new_unpad[0]) / 2, (size[0] - new_unpad[1]) / 2
    if (w, h) != new_unpad:
        image = cv2.resize(image, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255


@pytest.mark.parametrize("shape", [(1080, 810), (720, 1280), (333, 517), (320, 320), (17, 1000)])
def test_matches_ultralytics_recipe(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    tensor, params = letterbox(image, (320, 320))
    assert tensor.shape == (1, 3, 320, 320) and tensor.dtype == np.float32 and tensor.flags.c_contiguous
    np.testing.assert_allclose(tensor, _ultralytics_style(image, (320, 320)), atol=1e-6)
    assert params.image_shape == shape


def test_reused_buffers_follow_a_size_change() -> None:
    pre = Letterbox((320, 320))
    rng = np.random.default_rng(2)
    for shape in [(720, 1280), (1080, 810), (720, 1280)]:
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        first, _ = pre(image)
        np.testing.assert_allclose(first, _ultralytics_style(image, (320, 320)), atol=1e-6)
    again, _ = pre(image)
    assert again is not first  # callers may keep the previous tensor


def test_boxes_map_back_and_clip() -> None:
    _, params = letterbox(np.zeros((1080, 810, 3), np.uint8), (320, 320))  # scale 0.2963, pad x 40
    boxes = np.array([[40.0, 0.0, 280.0, 320.0], [0.0, -5.0, 400.0, 10.0]], dtype=np.float32)
    out = scale_boxes_to_image(boxes, params)
    np.testing.assert_allclose(out[0], [0, 0, 810, 1080], atol=1e-3)
    assert out[1, 0] == 0 and out[1, 1] == 0 and out[1, 2] == 810
