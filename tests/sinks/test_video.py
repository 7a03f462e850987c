"""VideoSink: bikes.mp4 through annotation + H.264 encoding, checked by decoding the output."""

from __future__ import annotations

import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import supervision as sv
from supervision.detection.compact_mask import CompactMask

from streamseg.sinks.annotate import annotate, labels
from streamseg.sinks.base import FrameResult
from streamseg.sinks.encoder import Encoding
from streamseg.sinks.video import VideoSink, frame_rate


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def synthetic_detections(index: int, height: int, width: int) -> sv.Detections:
    """Two tracked objects: an ellipse mask moving right (track 12) and a square one (unconfirmed)."""
    boxes = np.array(
        [[40 + index % 200, 60, 160 + index % 200, 200], [400, 20, 500, 120]],
        dtype=np.float32,
    )
    dense = np.zeros((2, height, width), dtype=bool)
    yy, xx = np.mgrid[:height, :width]
    x1, y1, x2, y2 = boxes[0]
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    dense[0] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    dense[1, 20:121, 400:501] = True
    return sv.Detections(
        xyxy=boxes,
        mask=CompactMask.from_dense(dense, boxes, image_shape=(height, width)),
        confidence=np.array([0.87, 0.4], dtype=np.float32),
        class_id=np.array([0, 2]),
        tracker_id=np.array([12, -1]),
        data={"class_name": np.array(["person", "car"])},
    )


def test_labels() -> None:
    det = synthetic_detections(0, 272, 640)
    assert labels(det) == ["#12 person 0.87", "car 0.40"]
    untracked = sv.Detections(xyxy=det.xyxy, class_id=det.class_id, confidence=det.confidence)
    assert labels(untracked) == ["0 0.87", "2 0.40"]


def test_annotate_paints_inside_the_mask_only_near_the_objects() -> None:
    image = np.full((272, 640, 3), 128, np.uint8)
    det = synthetic_detections(0, 272, 640)
    out = annotate(image, det)
    assert (image == 128).all()  # drawn on a copy: every sink of the camera shares the frame
    assert (out[130, 100] != 128).any()  # centre of the ellipse mask
    assert (out[260, 620] == 128).all()  # far from every detection
    assert annotate(image.copy(), sv.Detections.empty()).tolist() == image.tolist()


def test_annotate_never_materialises_full_frame_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    det = synthetic_detections(0, 272, 640)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a CompactMask was expanded to full-frame arrays")

    monkeypatch.setattr(CompactMask, "to_dense", forbidden)
    monkeypatch.setattr(CompactMask, "__array__", forbidden)
    getitem = CompactMask.__getitem__

    def no_dense_item(self: CompactMask, index: object) -> object:
        if isinstance(index, int | np.integer):  # mask[i] is a full-frame (H, W) array
            forbidden()
        return getitem(self, index)

    monkeypatch.setattr(CompactMask, "__getitem__", no_dense_item)
    out = annotate(np.zeros((272, 640, 3), np.uint8), det)
    assert out.any()


def test_frame_rate() -> None:
    assert frame_rate(25.0) == 25
    assert frame_rate(30000 / 1001) == frame_rate(29.97002997) == Fraction(30000, 1001)


def test_video_sink_writes_an_annotated_copy(bikes_mp4: Path, tmp_path: Path) -> None:
    frames = _frames(bikes_mp4)
    assert len(frames) == 250
    out_path = tmp_path / "nested" / "out" / "bikes.mp4"  # folders created by the sink
    sink = VideoSink("bikes", out_path, fps=25.0, block_when_full=True)
    sink.start()
    for index, image in enumerate(frames):
        height, width = image.shape[:2]
        result = FrameResult(
            camera="bikes",
            frame=index,
            pts=index / 25,
            capture_ts=0.0,
            width=width,
            height=height,
            detections=synthetic_detections(index, height, width),
            image=image.copy(),
        )
        assert sink.submit(result)
    sink.stop()
    assert sink.error is None and sink.written == 250 and sink.dropped == 0

    with av.open(str(out_path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 272)
        assert stream.average_rate == 25
        assert float(stream.duration * stream.time_base) == 10.0
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(decoded) == 250  # counted by decoding: a fragmented MP4's header does not hold the frame count

    # Inside the ellipse mask the output differs strongly from the input (annotation happened); far
    # from every detection it matches up to compression noise.
    for index in (0, 100, 249):
        det = synthetic_detections(index, 272, 640)
        inside = det.mask[0]
        diff = np.abs(decoded[index].astype(int) - frames[index].astype(int)).sum(axis=2)
        assert diff[inside].mean() > 20
        assert diff[230:, 560:].mean() < 12


def test_odd_size_frames_are_cropped_to_even(tmp_path: Path) -> None:
    out_path = tmp_path / "odd.mp4"
    sink = VideoSink("odd", out_path, fps=10.0, block_when_full=True)
    sink.start()
    for index in range(5):
        image = np.full((101, 151, 3), 40 * index, np.uint8)
        result = FrameResult("odd", index, index / 10, 0.0, 151, 101, sv.Detections.empty(), image=image)
        sink.submit(result)
    sink.stop()
    assert sink.error is None
    with av.open(str(out_path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (150, 100)
        assert sum(1 for _ in container.decode(stream)) == 5


def test_zones_and_lines_are_drawn(tmp_path: Path) -> None:
    from streamseg.config.zones import LineConfig, ZoneConfig

    out = tmp_path / "zones.mp4"
    zones = {"road": ZoneConfig(points=[(20, 60), (140, 60), (140, 110), (20, 110)])}
    lines = {"gate": LineConfig(start=(80, 0), end=(80, 50))}
    sink = VideoSink("cam", out, fps=10, zones=zones, lines=lines, block_when_full=True)
    sink.start()
    for i in range(5):
        image = np.zeros((120, 160, 3), np.uint8)
        sink.submit(FrameResult("cam", i, i / 10, 0.0, 160, 120, sv.Detections.empty(), image=image))
    sink.stop()
    assert sink.error is None
    frame = _frames(out)[-1].astype(int)
    yellow = (frame[..., 2] > 120) & (frame[..., 1] > 100) & (frame[..., 0] < 100)  # BGR, after H.264
    assert yellow[105:115, 60:100].any()  # the zone's bottom edge at y=110 (x 20..140)
    assert yellow[30:40, 78:83].any()  # the vertical line at x=80
    assert not yellow[88:104, 40:120].any()  # inside the zone (below its name tag) stays black: outlines only


def _bikes_results(bikes_mp4: Path, n: int):
    with av.open(str(bikes_mp4)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == n:
                return
            image = frame.to_ndarray(format="bgr24")
            height, width = image.shape[:2]
            det = synthetic_detections(index, height, width)
            yield FrameResult("bikes", index, index / 25, 0.0, width, height, det, image=image)


def test_what_was_written_before_a_crash_plays(bikes_mp4: Path, tmp_path: Path) -> None:
    """The file as it is on disk mid-run (what a crash or SIGKILL leaves) decodes up to its last fragment."""
    out_path = tmp_path / "bikes.mp4"
    sink = VideoSink("bikes", out_path, fps=25.0, block_when_full=True)
    sink.start()
    for result in _bikes_results(bikes_mp4, 150):
        sink.submit(result)
    deadline = time.monotonic() + 60
    while sink.written < 150:
        assert time.monotonic() < deadline, "the sink did not write 150 frames"
        time.sleep(0.01)
    crashed = tmp_path / "crashed.mp4"
    shutil.copyfile(out_path, crashed)  # the sink is still running: the file is not finished
    sink.stop()
    with av.open(str(crashed)) as container:  # a plain MP4 has no index yet: "moov atom not found"
        frames = sum(1 for _ in container.decode(video=0))
    assert 100 <= frames < 150  # 2 s keyframe interval: whole fragments only, none from the unfinished one


def test_an_existing_video_is_never_overwritten(bikes_mp4: Path, tmp_path: Path) -> None:
    earlier = tmp_path / "bikes.mp4"
    earlier.write_bytes(b"an earlier run's video")
    (tmp_path / "bikes-1.mp4").write_bytes(b"and another")
    sink = VideoSink("bikes", earlier, fps=25.0, block_when_full=True)
    sink.start()
    for result in _bikes_results(bikes_mp4, 10):
        sink.submit(result)
    sink.stop()
    assert earlier.read_bytes() == b"an earlier run's video"
    assert (tmp_path / "bikes-1.mp4").read_bytes() == b"and another"
    assert sink.outputs() == [tmp_path / "bikes-2.mp4"] and sink.error is None
    assert len(_frames(tmp_path / "bikes-2.mp4")) == 10


def test_a_video_sink_that_got_no_frame_writes_no_file(tmp_path: Path) -> None:
    sink = VideoSink("cam", tmp_path / "none.mp4", fps=10.0)
    sink.start()
    sink.stop(end_events=[])  # the end of a stream that never gave a frame
    assert sink.outputs() == [] and not (tmp_path / "none.mp4").exists()


def test_segments_play_on_their_own_and_retention_deletes_the_oldest(tmp_path: Path) -> None:
    import os

    from tests.sinks.frames import live_results

    out = tmp_path / "front.mp4"
    old = tmp_path / "front-20200101-000000.mp4"  # an earlier run's segment, two days old: past `keep`
    old.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    unrelated = tmp_path / "front-notes.mp4"  # not a segment name: never deleted
    unrelated.write_bytes(b"y")
    encoding = Encoding(preset="ultrafast", width=320)
    sink = VideoSink("front", out, encoding=encoding, segment_seconds=2, keep="1d", block_when_full=True)
    sink.start()
    assert not old.exists()  # retention runs at start too
    for result in live_results(175):  # 7 s at 25 fps, 2 s segments; capture time 2 s apart per segment
        sink.submit(result)
    sink.stop()
    assert sink.error is None and not out.exists()
    names = [p.name for p in sink.files]  # front-YYYYmmdd-HHMMSS.mp4, the local time of each first frame
    stamps = [time.strftime("%Y%m%d-%H%M%S", time.localtime(1_760_000_000 + 2 * i)) for i in range(4)]
    assert names == [f"front-{stamp}.mp4" for stamp in stamps]
    assert sink.segments() == sink.files
    counts = [len(_frames(p)) for p in sink.files]
    assert counts == [50, 50, 50, 25]  # each a complete MP4 starting with a keyframe
    with av.open(str(sink.files[1])) as container:
        assert next(container.decode(video=0)).key_frame
    assert unrelated.exists()


def test_size_retention_keeps_the_newest_segments_within_the_limit(tmp_path: Path) -> None:
    from tests.sinks.frames import live_results

    sink = VideoSink("front", tmp_path / "front.mp4", segment_seconds=2, keep="10KB", block_when_full=True)
    sink.start()
    for result in live_results(250):  # 10 s: five segments of ~5 kB each (the scene compresses well)
        sink.submit(result)
    sink.stop()
    assert len(sink.files) == 5 and sink.error is None
    left = sink.segments()
    assert 2 <= len(left) <= 3 and left == sink.files[-len(left) :]  # the newest kept, the oldest deleted
    assert sum(p.stat().st_size for p in left[:-1]) <= 10_000  # the limit, before the last one was started
