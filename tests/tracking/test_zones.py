"""Zone membership by mask overlap (from CompactMask crops), the box fallback, and the zones config checks."""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import pytest
from pydantic import ValidationError

from streamseg.config.app import AppConfig
from streamseg.config.zones import MAX_COORD, ZoneConfig
from streamseg.tracking.zones import CameraZones, Zone
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


def test_zones_far_outside_the_frame_are_clipped_to_it_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    """8 zones reaching 16384 px took 4.45 GB for a 640x272 camera: the rasters were sized by the polygons."""
    far = MAX_COORD
    zones = {f"z{i}": ZoneConfig(points=[(0, 0), (far, 0), (far, far - i), (0, far)]) for i in range(8)}
    zones["right"] = ZoneConfig(points=[(320, 0), (far, 0), (far, far), (320, far)])  # the frame's right half
    zones["gone"] = ZoneConfig(points=[(1000, 1000), (far, 1000), (far, far)])  # below and right of the frame
    zones["edge"] = ZoneConfig(points=[(0, 0), (640, 0), (640, 272), (0, 272)])  # the frame itself: no warning
    masks = np.zeros((2, 272, 640), dtype=bool)
    masks[0, 100:150, 200:260] = True  # left half
    masks[1, 200:272, 600:640] = True  # right half, touching the bottom-right corner
    with_masks = detections_from_dense(masks, ["car", "person"], tracker_id=[1, 2])
    boxes = boxes_only(["car", "bus"])  # bottom-centres at x 4.5 and 14.5 (left half)

    caplog.set_level(logging.WARNING)
    tracemalloc.start()
    try:
        geometry = CameraZones(zones, {}, camera="front")
        for _ in range(3):
            in_zones, _ = geometry.update(with_masks, (272, 640))
            by_box, _ = geometry.update(boxes, (272, 640))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 2**20 + len(zones) * 272 * 640  # frame-sized rasters (one byte a pixel), nothing polygon-sized
    inside = [f"z{i}" for i in range(8)]
    assert in_zones == [[*inside, "edge"], [*inside, "right", "edge"]]
    assert by_box == [[*inside, "edge"], [*inside, "edge"]]
    warnings = [r.getMessage() for r in caplog.records if r.name == "streamseg.tracking.zones"]
    assert len(warnings) == 10  # one per zone outside the frame, not one per frame
    assert warnings[0] == (
        "camera 'front': zone 'z0' reaches outside the 640x272 frame (its points reach x=16384, y=16384): "
        "only its part inside the frame counts"
    )
    assert [w for w in warnings if "'gone'" in w] == [
        "camera 'front': zone 'gone' lies wholly outside the 640x272 frame (its points reach x=16384, y=16384): "
        "nothing can ever be in it"
    ]
    assert not [w for w in warnings if "'edge'" in w]


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
