"""The tracker wrapper, for every tracker type the config offers: IDs, the alive set, and track loss."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from streamseg.config.tracker import TrackerConfig
from streamseg.tracking.tracker import Tracker
from streamseg.vocab import TrackerType

TYPES = [t for t in TrackerType if t != TrackerType.NONE]


def person_at(x: float) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[x, 100.0, x + 40.0, 180.0]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0]),
    )


def test_the_config_takes_every_tracker_type_by_its_word() -> None:
    for kind in TrackerType:
        assert TrackerConfig.model_validate({"type": kind.value}).type == kind


@pytest.mark.parametrize("kind", TYPES)
def test_a_steady_object_gets_one_id_that_ends_after_the_lost_buffer(kind: TrackerType) -> None:
    fps = 10.0
    tracker = Tracker(TrackerConfig(type=kind, lost_track_buffer=30, minimum_consecutive_frames=2), fps)
    ids: list[int] = []
    alive_while_seen: list[set[int]] = []
    for i in range(12):
        tracked = tracker.update(person_at(100.0 + 3 * i), timestamp=i / fps)
        assert len(tracked.detections) == 1 and tracked.detections.tracker_id is not None
        ids.append(int(tracked.detections.tracker_id[0]))
        alive_while_seen.append(tracked.alive)
    confirmed = [t for t in ids if t >= 0]
    assert confirmed, f"{kind}: no confirmed ID in 12 frames: {ids}"
    assert len(set(confirmed)) == 1, f"{kind}: the ID changed: {ids}"
    track_id = confirmed[0]
    assert track_id in alive_while_seen[-1]

    # Gone from view: still alive (lost) for a while, then dropped once the lost buffer (30 frames at 30 fps
    # = 1 s) has passed.
    alive_after = []
    for j in range(12, 40):
        tracked = tracker.update(sv.Detections.empty(), timestamp=j / fps)
        assert len(tracked.detections) == 0
        alive_after.append(track_id in tracked.alive)
    assert alive_after[0], f"{kind}: the track ended on its first missed frame"
    assert not alive_after[-1], f"{kind}: the track never ended"


def test_none_has_no_tracker() -> None:
    with pytest.raises(ValueError, match="tracking is off"):
        Tracker(TrackerConfig(type="none"), 25.0)
