"""Where regions go and how their detections come back together (streamseg/regions.py)."""

from __future__ import annotations

import numpy as np
import supervision as sv
from supervision.detection.compact_mask import CompactMask

from streamseg import regions
from streamseg.regions import Window

FRAME = (2160, 3840)  # h, w


def boxes(*xyxy: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(xyxy, np.float32).reshape(-1, 4)


def test_nearby_motion_shares_one_window_of_the_input_size_inside_the_frame() -> None:
    (win,) = regions.plan(boxes((1000, 1000, 1040, 1080), (1100, 1020, 1150, 1100)), boxes(), FRAME, 320, 4)
    assert (win.x1 - win.x0, win.y1 - win.y0) == (320, 320)
    assert win.x0 <= 1000 and win.x1 >= 1150 and win.y0 <= 1000 and win.y1 >= 1100
    (corner,) = regions.plan(boxes((3830, 2150, 3840, 2160)), boxes(), FRAME, 320, 4)
    assert corner == Window(3520, 1840, 3840, 2160)  # moved inside, not cut


def test_distant_motion_gets_a_window_each_and_too_many_mean_the_whole_frame() -> None:
    two = regions.plan(boxes((100, 100, 150, 150), (3000, 1800, 3050, 1850)), boxes(), FRAME, 320, 4)
    assert two is not None and len(two) == 2
    five = boxes(*[(700 * i, 100, 700 * i + 40, 140) for i in range(5)])
    assert regions.plan(five, boxes(), FRAME, 320, 4) is None
    assert regions.plan(boxes((0, 0, 2000, 1200)), boxes(), FRAME, 320, 4) is None  # more than half the frame


def test_a_tracked_object_the_motion_touches_is_taken_whole() -> None:
    arm = boxes((1000, 1000, 1020, 1020))
    person = boxes((900, 700, 1100, 1400))  # 700 tall: larger than the input, the window grows to hold it
    (win,) = regions.plan(arm, person, FRAME, 320, 4)
    assert win.x0 <= 900 and win.x1 >= 1100 and win.y0 <= 700 and win.y1 >= 1400
    assert win.x1 - win.x0 == win.y1 - win.y0  # square: the letterbox wastes nothing


def detections(xyxy: np.ndarray, shape: tuple[int, int], score: float = 0.9) -> sv.Detections:
    dense = np.zeros((len(xyxy), *shape), bool)
    for i, (x1, y1, x2, y2) in enumerate(xyxy.astype(int)):
        dense[i, y1:y2, x1:x2] = True
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.full(len(xyxy), score, np.float32),
        class_id=np.zeros(len(xyxy), int),
        mask=CompactMask.from_dense(dense, xyxy, image_shape=shape),
        data={"class_name": np.array(["person"] * len(xyxy))},
    )


def test_an_object_seen_by_two_overlapping_windows_comes_back_once_in_frame_coordinates() -> None:
    a, b = Window(1000, 1000, 1320, 1320), Window(1200, 1000, 1520, 1320)
    # the same person at frame x 1250..1300, y 1100..1200, as each window saw it
    in_a = regions.to_frame(detections(boxes((250, 100, 300, 200)), (320, 320), 0.9), a, FRAME)
    in_b = regions.to_frame(detections(boxes((50, 100, 100, 200)), (320, 320), 0.8), b, FRAME)
    elsewhere = regions.to_frame(detections(boxes((10, 10, 40, 60)), (320, 320)), b, FRAME)
    merged = regions.merge([in_a, in_b, elsewhere], iou=0.7)
    assert len(merged) == 2
    assert merged.xyxy.tolist() == [[1250, 1100, 1300, 1200], [1210, 1010, 1240, 1060]]
    assert merged.mask.image_shape == FRAME
    dense = merged.mask[0]
    assert dense.shape == FRAME and dense[1100:1200, 1250:1300].all() and dense.sum() == 50 * 100


def test_still_objects_outside_every_window_keep_their_last_detections() -> None:
    held = detections(boxes((100, 100, 200, 300), (1250, 1100, 1300, 1200)), FRAME)
    kept = regions.outside(held, [Window(1000, 1000, 1320, 1320)])
    assert kept.xyxy.tolist() == [[100, 100, 200, 300]]
