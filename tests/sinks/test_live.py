"""The live output: latest frame and counts for the HTTP server, JPEGs only on demand, one per frame for all."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from streamseg.config.zones import LineConfig, ZoneConfig
from streamseg.sinks.live import LiveSink
from tests.sinks.helpers import FakeEvent, boxes_only, frame_result

ZONES = {"door": ZoneConfig(points=[[0, 0], [30, 0], [30, 30], [0, 30]])}
LINES = {"middle": LineConfig(start=[32, 0], end=[32, 48])}


def result(frame: int, labels: list[str], *, zones=None, crossings=None, events=()):
    r = frame_result(boxes_only(labels, tracker_id=list(range(1, len(labels) + 1))), frame=frame, events=events)
    r.image = np.full((48, 64, 3), 40 + frame, np.uint8)
    r.zones = zones or [[] for _ in labels]
    r.crossings = crossings or [[] for _ in labels]
    return r


def fed(*results) -> LiveSink:
    sink = LiveSink("front", zones=ZONES, lines=LINES, events=3)
    sink.start()
    for r in results:
        assert sink.submit(r)
    sink.stop()
    return sink


def test_counts_zones_lines_and_the_last_events_newest_first() -> None:
    sink = fed(
        result(0, ["person", "car"], zones=[["door"], []], crossings=[[("middle", "in")], []]),
        result(1, ["person"], crossings=[[("middle", "out")]], events=[FakeEvent("new", "e1", 1)]),
        result(2, ["person"] * 2, zones=[["door"], ["door"]], events=[FakeEvent("new", f"e{i}", i) for i in (2, 3, 4)]),
    )
    view = sink.view()
    assert view["frame"] == 2 and view["size"] == [64, 48]
    assert view["counts"] == {"person": 2}  # now, not summed over frames
    assert view["zones"] == {"door": {"person": 2}}
    assert view["lines"] == {"middle": {"in": 1, "out": 1, "labels": {"person": {"in": 1, "out": 1}}}}
    assert [e["event_id"] for e in view["events"]] == ["e4", "e3", "e2"]  # the last 3, newest first
    assert view["jpegs"] == 0  # nobody asked: nothing was encoded


def test_a_zone_empties_and_unconfirmed_tracks_are_not_counted() -> None:
    empty = result(1, ["person"])
    empty.detections.tracker_id[:] = -1  # not yet confirmed by the tracker
    view = fed(result(0, ["person"], zones=[["door"]]), empty).view()
    assert view["counts"] == {} and view["zones"] == {"door": {}}


def test_jpeg_is_the_latest_frame_annotated_once_for_every_viewer() -> None:
    first, second = result(0, ["person"]), result(1, ["person"])
    sink = fed(first, second)
    seq, jpeg = sink.jpeg()
    assert seq == 2 and sink.jpeg() == (seq, jpeg) and sink.encoded == 1  # cached for the next viewer
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3)
    assert (second.image == 41).all(), "the shared frame was drawn on"
    assert np.abs(image.astype(int) - 41).max() > 100  # the box, zone and line are drawn on the copy


def test_wait_wakes_on_a_new_frame() -> None:
    sink = LiveSink("front")
    sink.start()
    try:
        assert sink.wait(0, timeout=0.05) == 0
        threading.Timer(0.1, lambda: sink.submit(result(0, []))).start()
        assert sink.wait(0, timeout=10) == 1
    finally:
        sink.stop()
    assert sink.jpeg() is not None and LiveSink("x").jpeg(wait=0.05) is None


def test_never_waits_even_for_a_file_camera() -> None:
    """submit returns at once whatever the sink's thread is doing; what does not fit is dropped and counted."""
    sink = LiveSink("front")  # not started: nothing drains the queue
    results = [result(i, ["person"]) for i in range(20)]
    assert not sink.block_when_full
    accepted = [sink.submit(r) for r in results]
    assert sum(accepted) == 8 and sink.dropped == 12


def test_the_camera_copies_frames_for_it_only_while_someone_watches() -> None:
    sink = LiveSink("front")
    assert not sink.needs_image  # nobody watches: the camera does not even copy its frames for it
    sink.watch(+1)
    assert sink.needs_image  # an MJPEG viewer
    sink.watch(-1)
    assert not sink.needs_image
    sink.start()
    try:
        unwatched = result(0, ["person"])
        unwatched.image = None  # made while nobody watched
        sink.submit(unwatched)
        threading.Timer(0.2, lambda: sink.submit(result(1, ["person"]))).start()
        seq, _ = sink.jpeg()  # the first snapshot after a quiet spell waits for a frame with its image
        assert seq == 2 and sink.needs_image  # and for a while the camera copies frames again
    finally:
        sink.stop()
