"""Zone membership by mask overlap (from CompactMask crops), the box fallback, and the zones config checks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from streamseg.config.app import AppConfig
from streamseg.config.zones import ZoneConfig
from streamseg.tracking.zones import Zone
from tests.sinks.helpers import boxes_only, detections_from_dense


def test_overlap_is_the_fraction_of_the_mask_inside_the_polygon() -> None:
    masks = np.zeros((3, 100, 200), dtype=bool)
    masks[0, 40:60, 80:120] = True  # half left of x=100, half right
    masks[1, 10:20, 150:190] = True  # wholly right
    masks[2, 70:90, 0:30] = True  # wholly left, touching the image edge
    zone = Zone("left", ZoneConfig(points=[[0, 0], [99, 0], [99, 99], [0, 99]], min_overlap=0.4))
    det = detections_from_dense(masks, ["car", "car", "person"], tracker_id=[1, 2, 3])
    fraction = zone.overlap(det.mask, 3)
    assert fraction == pytest.approx([0.5, 0.0, 1.0])
    assert zone.contains(det, ["car", "car", "person"]).tolist() == [True, False, True]
    dense = detections_from_dense(masks, ["car", "car", "person"], compact=False)  # same answer from dense masks
    assert zone.overlap(dense.mask, 3) == pytest.approx(fraction)


def test_label_filter_and_the_box_point_without_masks() -> None:
    zone = Zone("z", ZoneConfig(points=[[0, 0], [15, 0], [15, 30], [0, 30]], labels=["car"]))
    det = boxes_only(["car", "car", "bus"])  # boxes at x 0-9, 10-19, 20-29; bottom-centres at x 4.5, 14.5, 24.5
    assert zone.contains(det, ["car", "car", "bus"]).tolist() == [True, True, False]


def camera(**extra) -> dict:
    return {"cameras": {"c": {"source": {"url": "a.mp4"}, "model": {"path": "m.onnx"}, **extra}}}


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"zones": {"status": {"points": [[0, 0], [1, 0], [1, 1]]}}}, "reserved"),
        ({"zones": {"a/b": {"points": [[0, 0], [1, 0], [1, 1]]}}}, "topic level"),
        ({"zones": {"z": {"points": [[0, 0], [1, 0]]}}}, "at least 3"),
        ({"zones": {"z": {"points": [[0, 0], [1, 0], [0, 0]]}}}, "3 distinct"),
        ({"zones": {"z": {"points": [[0, 0], [-5, 0], [1, 1]]}}}, "outside"),
        ({"lines": {"l": {"start": [0, 0], "end": [99999, 0]}}}, "outside"),
        ({"lines": {"events": {"start": [0, 0], "end": [9, 0]}}}, "reserved"),
        ({"tracker": {"type": "none"}, "lines": {"l": {"start": [0, 0], "end": [9, 0]}}}, "need tracking"),
    ],
)
def test_bad_zones_and_lines_are_refused(extra: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        AppConfig.model_validate(camera(**extra))


def test_password_and_password_file_are_exclusive(tmp_path) -> None:
    (tmp_path / "pw").write_text("x\n")
    raw = {**camera(), "mqtt": {"password": "a", "password_file": "pw"}}
    with pytest.raises(ValidationError, match="either password or password_file"):
        AppConfig.model_validate(raw, context={"base_dir": tmp_path})
    raw["mqtt"].pop("password")
    assert AppConfig.model_validate(raw, context={"base_dir": tmp_path}).mqtt.read_password() == "x"
