"""The whole pipeline on the real model and real video: outputs, tracks, events, isolation of a bad camera."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import cv2
import pytest

from streamseg.config import load_config
from streamseg.daemon import Daemon


def run_config(tmp: Path, text: str) -> tuple[Daemon, int]:
    path = tmp / "cameras.yaml"
    path.write_text(text)
    daemon = Daemon(load_config(path), path)
    return daemon, daemon.run(handle_signals=False)


@pytest.fixture(scope="module")
def bikes_run(tmp_path_factory: pytest.TempPathFactory, seg_model: Path, bikes_mp4: Path):
    """One full run of bikes.mp4 (250 frames) with the JSON-lines and video outputs."""
    tmp = tmp_path_factory.mktemp("bikes")
    daemon, code = run_config(
        tmp,
        f"""
defaults:
  model: {{path: {seg_model}, threads: 2}}
cameras:
  bikes:
    source: {{url: {bikes_mp4}}}
    outputs:
      video: {{path: out/bikes.mp4}}
      jsonl: {{path: out/bikes.jsonl}}
""",
    )
    lines = [json.loads(line) for line in (tmp / "out" / "bikes.jsonl").read_text().splitlines()]
    return daemon, code, tmp / "out", lines


def test_file_pipeline_ends_cleanly_with_every_frame(bikes_run) -> None:
    daemon, code, _, lines = bikes_run
    assert code == 0
    camera = daemon.cameras["bikes"]
    assert camera.state == "stopped" and camera.error is None
    frames = [obj for obj in lines if obj["topic"] == "detections"]
    assert [f["frame"] for f in frames] == list(range(250))  # a file loses nothing
    assert all((f["width"], f["height"]) == (640, 272) for f in frames)
    pts = [f["pts"] for f in frames]
    assert pts == sorted(pts) and pts[-1] == pytest.approx(249 / 25)
    # OpenCV's thread pool is off while cameras run: its threads would take the cores the engine computes on
    assert cv2.getNumThreads() == 1


def test_detections_are_cars_and_people_with_masks_and_track_ids(bikes_run) -> None:
    frames = [obj for obj in bikes_run[3] if obj["topic"] == "detections"]
    labels = Counter(d["label"] for f in frames for d in f["detections"])
    assert labels["car"] > 100 and labels["person"] > 50 and labels["bicycle"] + labels["motorcycle"] > 20
    dets = [d for f in frames for d in f["detections"]]
    assert all(d["mask"]["format"] == "polygon" and len(d["mask"]["points"]) >= 3 for d in dets)
    tracked = [d for d in dets if d["track_id"] is not None]
    assert len(tracked) > 0.7 * len(dets)


def test_cyclist_keeps_one_track_id(bikes_run) -> None:
    """The cyclist crossing around frames 105-140: the rider above the bicycle keeps one ID, as does the bicycle."""
    frames = [obj for obj in bikes_run[3] if obj["topic"] == "detections"]
    rider_ids, bike_ids = Counter(), Counter()
    for f in frames[100:145]:
        persons = [d for d in f["detections"] if d["label"] == "person"]
        for bike in (d for d in f["detections"] if d["label"] == "bicycle"):
            bx1, by1, bx2, _ = bike["box"]
            for p in persons:
                overlap = max(0.0, min(p["box"][2], bx2) - max(p["box"][0], bx1)) / (bx2 - bx1)
                if overlap > 0.5 and p["box"][1] < by1:  # a person over the bicycle: the rider
                    rider_ids[p["track_id"]] += 1
                    bike_ids[bike["track_id"]] += 1
    assert sum(rider_ids.values()) >= 25
    (rider, seen), *others = rider_ids.most_common()
    assert rider is not None and seen >= 0.95 * sum(rider_ids.values()), rider_ids
    confirmed = {tid: n for tid, n in bike_ids.items() if tid is not None}
    assert len(confirmed) == 1, bike_ids


def test_track_events_open_and_close_every_track(bikes_run) -> None:
    events = [obj for obj in bikes_run[3] if obj["topic"] == "events"]
    by_track: dict[int, list[dict]] = {}
    for e in events:
        by_track.setdefault(e["track_id"], []).append(e)
    assert len(by_track) >= 10
    for evs in by_track.values():
        kinds = [e["type"] for e in evs]
        assert kinds[0] == "new" and kinds[-1] == "end" and kinds.count("new") == kinds.count("end") == 1, kinds
        assert len({e["event_id"] for e in evs}) == 1
        assert evs[0]["before"] is None and evs[-1]["before"] is not None
        end = evs[-1]["after"]
        assert end["end_time"] >= end["start_time"] and end["frames"] >= 1 and end["top_score"] >= end["score"]
    frames = {f["frame"]: f for f in bikes_run[3] if f["topic"] == "detections"}
    # every track id seen in a frame had a `new` event
    seen = {d["track_id"] for f in frames.values() for d in f["detections"] if d["track_id"] is not None}
    assert seen == set(by_track)


def test_annotated_video_decodes_back(bikes_run, bikes_mp4: Path) -> None:
    out = bikes_run[2] / "bikes.mp4"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 272)
        assert stream.average_rate == 25
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(frames) == 250
    with av.open(str(bikes_mp4)) as container:
        for i, f in enumerate(container.decode(video=0)):
            if i == 119:
                original = f.to_ndarray(format="bgr24")
                break
    # frame 119 has tracked objects: the annotated frame differs clearly from the input
    assert abs(frames[119].astype(int) - original.astype(int)).mean() > 10


def test_a_missing_camera_fails_alone(tmp_path: Path, seg_model: Path, carphone_mp4: Path) -> None:
    daemon, code = run_config(
        tmp_path,
        f"""
defaults:
  model: {{path: {seg_model}}}
  tracker: {{type: none}}
cameras:
  gone:
    source: {{url: {tmp_path / "missing.mp4"}}}
  broken:
    source: {{url: {tmp_path / "cameras.yaml"}}}
  good:
    source: {{url: {carphone_mp4}}}
    fps: 5
    outputs: {{jsonl: {{path: good.jsonl}}}}
""",
    )
    assert code == 1  # a batch job whose camera failed says so
    assert daemon.cameras["gone"].state == "failed" and "missing.mp4" in daemon.cameras["gone"].error
    assert daemon.cameras["broken"].state == "failed" and "cameras.yaml" in daemon.cameras["broken"].error
    good = daemon.cameras["good"]
    assert good.state == "stopped" and good.error is None
    frames = (tmp_path / "good.jsonl").read_text().splitlines()
    assert 19 <= len(frames) <= 21  # 4 s at 5 fps
    assert good.source.frames_skipped == 120 - len(frames)
