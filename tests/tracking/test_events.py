"""Track events from tracked detections: new / update / end, rate limits, and zone inertia."""

from __future__ import annotations

import numpy as np
import supervision as sv

from streamseg.config.events import EventsConfig
from streamseg.config.zones import ZoneConfig
from streamseg.tracking.events import EventTracker

T0 = 1_700_000_000.0


def one(track_id: int, x: float, label: str = "car", score: float = 0.8) -> sv.Detections:
    """One tracked, mask-less detection: a 10x10 box whose bottom-centre is at (x + 5, 20)."""
    return sv.Detections(
        xyxy=np.array([[x, 10, x + 10, 20]], dtype=np.float32),
        confidence=np.array([score], dtype=np.float32),
        class_id=np.array([0]),
        tracker_id=np.array([track_id]),
        data={"class_name": np.array([label])},
    )


def types(events) -> list[str]:
    return [e.type for e in events]


def test_new_update_end_with_rate_limited_updates() -> None:
    tracker = EventTracker("cam", EventsConfig(update_interval=1.0))
    assert tracker.update(one(-1, 0), {-1}, T0).events == []  # unconfirmed: no event yet
    new = tracker.update(one(7, 0), {7}, T0 + 0.1).events
    assert types(new) == ["new"] and new[0].before is None and new[0].track_id == 7
    assert new[0].after["box"] == [0.0, 10.0, 10.0, 20.0] and new[0].after["end_time"] is None
    assert tracker.update(one(7, 1), {7}, T0 + 0.5).events == []  # within update_interval: nothing
    update = tracker.update(one(7, 2), {7}, T0 + 1.2).events
    assert types(update) == ["update"] and update[0].before == new[0].after
    assert update[0].after["frames"] == 3 and update[0].event_id == new[0].event_id
    assert tracker.update(sv.Detections.empty(), {7}, T0 + 1.3).events == []  # lost, but the tracker still holds it
    end = tracker.update(sv.Detections.empty(), set(), T0 + 2.0).events
    assert types(end) == ["end"] and end[0].after["end_time"] == T0 + 2.0 and not tracker.active


def test_label_change_is_reported_at_once_and_top_score_labels_the_track() -> None:
    tracker = EventTracker("cam", EventsConfig(update_interval=60))
    tracker.update(one(1, 0, "car", 0.5), {1}, T0)
    assert tracker.update(one(1, 0, "car", 0.4), {1}, T0 + 0.1).events == []
    changed = tracker.update(one(1, 0, "truck", 0.9), {1}, T0 + 0.2).events
    assert types(changed) == ["update"] and changed[0].label == "truck"
    assert changed[0].after["top_score"] == 0.9 and changed[0].before["label"] == "car"
    assert tracker.update(one(1, 0, "car", 0.6), {1}, T0 + 0.3).events == []  # a weaker sighting keeps "truck"


def test_finish_ends_every_open_track() -> None:
    tracker = EventTracker("cam")
    tracker.update(one(1, 0), {1}, T0)
    tracker.update(one(2, 30), {1, 2}, T0 + 0.1)
    ended = tracker.finish(T0 + 5)
    assert sorted((e.type, e.track_id) for e in ended) == [("end", 1), ("end", 2)] and not tracker.active


def test_zone_inertia_ignores_a_flicker_and_follows_a_real_entry() -> None:
    zone = ZoneConfig(points=[(50, 0), (100, 0), (100, 40), (50, 40)], inertia=3)
    tracker = EventTracker("cam", EventsConfig(update_interval=60), zones={"gate": zone})
    xs = [0, 50, 0, 0, 50, 50, 50, 50]  # bottom-centre at x+5: outside, one frame inside, then inside for good
    zones_seen, events = [], []
    for i, x in enumerate(xs):
        step = tracker.update(one(3, x), {3}, T0 + i * 0.1)
        events += step.events
        zones_seen.append(step.zones[0])  # what the sinks count
    assert zones_seen == [[], [], [], [], [], [], ["gate"], ["gate"]]
    updates = [e for e in events if e.type == "update"]
    assert len(updates) == 1 and updates[0].after["entered_zones"] == ["gate"] and updates[0].ts == T0 + 0.6


def test_a_track_born_inside_a_zone_is_in_it_at_once() -> None:
    zone = ZoneConfig(points=[(0, 0), (100, 0), (100, 40), (0, 40)], inertia=5)
    tracker = EventTracker("cam", zones={"yard": zone})
    (new,) = tracker.update(one(4, 10), {4}, T0).events
    assert new.type == "new" and new.zones == ["yard"] and new.after["entered_zones"] == ["yard"]
