"""The wire format: polygons on the mask boundary, RLE identical to pycocotools, rounding, schema."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as coco

from streamseg.sinks.serialize import (
    coco_counts_string,
    crop_to_coco_rle,
    detection_dicts,
    dumps,
    frame_payload,
)
from tests.sinks.helpers import boxes_only, detections_from_dense, frame_result
from tests.sinks.schemas import validate

# pycocotools' decode trips numpy 2's copy-keyword deprecation; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def coco_encode(dense: np.ndarray) -> str:
    return coco.encode(np.asfortranarray(dense.astype(np.uint8)))["counts"].decode()


def blob(h: int, w: int, y0: int, y1: int, x0: int, x1: int, holes: bool = False) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    if holes:  # a ragged, multi-run shape
        yy, xx = np.mgrid[:h, :w]
        m &= (yy * 7 + xx * 3) % 5 != 0
    return m


RLE_CASES = {
    "interior": blob(48, 64, 10, 30, 5, 40),
    "touches_top_left": blob(48, 64, 0, 20, 0, 20),
    "touches_bottom_right": blob(48, 64, 30, 48, 50, 64),
    "full_height_columns": blob(48, 64, 0, 48, 10, 20),  # runs join across columns
    "full_image": np.ones((48, 64), dtype=bool),
    "ragged": blob(48, 64, 3, 45, 2, 61, holes=True),
    "odd_size": blob(7, 13, 1, 6, 0, 13, holes=True),
    "one_row": blob(1, 9, 0, 1, 2, 7),
    "one_pixel_image": np.ones((1, 1), dtype=bool),
}


@pytest.mark.parametrize("name", RLE_CASES)
def test_rle_round_trips_through_pycocotools(name: str) -> None:
    dense = RLE_CASES[name]
    [d] = detection_dicts(detections_from_dense(dense[None], ["thing"]), "rle")
    h, w = dense.shape
    assert d["mask"]["format"] == "rle"
    assert d["mask"]["size"] == [h, w]
    assert d["mask"]["counts"] == coco_encode(dense)
    decoded = coco.decode({"size": [h, w], "counts": d["mask"]["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), dense)


def test_rle_of_empty_mask_is_all_background() -> None:
    dense = np.zeros((1, 48, 64), dtype=bool)
    [d] = detection_dicts(detections_from_dense(dense, ["thing"]), "rle")
    assert d["mask"]["counts"] == coco_encode(dense[0])
    assert not coco.decode({"size": [48, 64], "counts": d["mask"]["counts"].encode()}).any()


def test_rle_matches_pycocotools_on_random_crops() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0, h)) + 1, int(rng.integers(x0, w)) + 1
        crop = rng.random((y1 - y0, x1 - x0)) < rng.random()
        dense = np.zeros((h, w), dtype=bool)
        dense[y0:y1, x0:x1] = crop
        assert crop_to_coco_rle(crop, x0, y0, h, w) == coco_encode(dense), (h, w, x0, y0)


def test_counts_string_handles_large_and_decreasing_counts() -> None:
    counts = [1_000_000, 3, 999_000, 70_000, 5, 0x10, 0x1F]
    dense = np.zeros(sum(counts), dtype=np.uint8)
    pos = 0
    for i, c in enumerate(counts):
        dense[pos : pos + c] = i % 2
        pos += c
    image = dense.reshape(len(dense), 1)  # one column: the scan order is the flat order
    assert coco_counts_string(counts) == coco_encode(image)


def boundary_pixels(mask: np.ndarray) -> set[tuple[int, int]]:
    """(x, y) of mask pixels with a 4-neighbour outside the mask (or the image)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    ys, xs = np.nonzero(mask & ~inner)
    return set(zip(xs.tolist(), ys.tolist(), strict=True))


@pytest.mark.parametrize("name", ["interior", "touches_top_left", "touches_bottom_right", "ragged", "odd_size"])
@pytest.mark.parametrize("tolerance", [0.0, 1.0, 3.0])
def test_polygon_points_lie_on_the_mask_boundary_inside_the_box(name: str, tolerance: float) -> None:
    dense = RLE_CASES[name]
    det = detections_from_dense(dense[None], ["thing"])
    [d] = detection_dicts(det, "polygon", polygon_tolerance=tolerance)
    points = d["mask"]["points"]
    assert d["mask"]["format"] == "polygon"
    assert len(points) >= 3
    edge = boundary_pixels(dense)
    x1, y1, x2, y2 = d["box"]
    for x, y in points:
        assert isinstance(x, int) and isinstance(y, int)
        assert (x, y) in edge
        assert x1 <= x <= x2 and y1 <= y <= y2


def test_polygon_of_a_rectangle_is_its_corners_and_picks_the_largest_part() -> None:
    dense = blob(48, 64, 10, 20, 5, 30)
    dense[30:32, 40:42] = True  # a smaller second part, same mask
    [d] = detection_dicts(detections_from_dense(dense[None], ["thing"]), "polygon")
    assert sorted(map(tuple, d["mask"]["points"])) == [(5, 10), (5, 19), (29, 10), (29, 19)]


def test_polygon_of_empty_mask_has_no_points() -> None:
    [d] = detection_dicts(detections_from_dense(np.zeros((1, 48, 64), dtype=bool), ["thing"]), "polygon")
    assert d["mask"] == {"format": "polygon", "points": []}


def test_dense_masks_serialise_like_compact_ones() -> None:
    dense = np.stack([RLE_CASES["ragged"], RLE_CASES["interior"]])
    for fmt in ("polygon", "rle"):
        compact = detection_dicts(detections_from_dense(dense, ["a", "b"]), fmt)
        plain = detection_dicts(detections_from_dense(dense, ["a", "b"], compact=False), fmt)
        assert compact == plain


def test_none_format_and_maskless_detections_have_no_mask_key() -> None:
    det = detections_from_dense(RLE_CASES["interior"][None], ["thing"])
    assert all("mask" not in d for d in detection_dicts(det, "none"))
    assert all("mask" not in d for d in detection_dicts(boxes_only(["a", "b"]), "polygon"))


def test_fields_rounding_and_track_ids() -> None:
    det = detections_from_dense(
        np.stack([RLE_CASES["interior"], RLE_CASES["ragged"]]),
        ["person", "car"],
        tracker_id=[7, -1],
        scores=[0.123456, 0.9],
    )
    det.xyxy = det.xyxy + np.float32(0.123456)
    first, second = detection_dicts(det, "none")
    assert list(first) == ["track_id", "class_id", "label", "score", "box"]
    assert first["track_id"] == 7 and second["track_id"] is None  # -1: not confirmed yet
    assert first["label"] == "person" and second["label"] == "car"
    assert first["score"] == 0.1235
    assert first["box"] == [5.12, 10.12, 39.12, 29.12]
    assert "track_id" not in detection_dicts(boxes_only(["a"]), "none")[0]


def test_unknown_mask_format_is_refused() -> None:
    with pytest.raises(ValueError, match="mask_format"):
        detection_dicts(boxes_only(["a"]), "bitmap")


@pytest.mark.parametrize("fmt", ["polygon", "rle", "none"])
def test_frame_payload_follows_the_schema(fmt: str) -> None:
    det = detections_from_dense(
        np.stack([RLE_CASES["interior"], RLE_CASES["ragged"]]), ["person", "car"], tracker_id=[1, -1]
    )
    payload = frame_payload(frame_result(det, frame=3), fmt, publish_ts=1_700_000_001.25)
    validate("detections", payload)
    assert payload["schema_version"] == 1
    assert (payload["camera"], payload["frame"], payload["width"], payload["height"]) == ("front", 3, 64, 48)
    assert payload["publish_ts"] == 1_700_000_001.25
    text = dumps(payload)
    assert ", " not in text and ": " not in text  # compact
    assert json.loads(text) == payload


def test_frame_payload_with_no_detections() -> None:
    payload = frame_payload(frame_result(boxes_only([])), "polygon", publish_ts=0.0)
    validate("detections", payload)
    assert payload["detections"] == []
