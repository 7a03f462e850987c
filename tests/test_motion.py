"""Motion gating, mask, regions and fair rates on the real model and real video (README, "Motion").

The still clip is bikes.mp4's first frame held 20 s, 4 s of its real motion, then its last moving frame held 4 s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import av
import cv2
import numpy as np
import pytest

from streamseg import report
from streamseg.config.camera import CameraConfig
from streamseg.config.motion import MotionConfig
from streamseg.inference.pool import StagePool
from streamseg.inference.stage import InferenceStage
from streamseg.metrics import CameraCollector
from streamseg.models.yolo import YoloModel
from streamseg.motion import MotionDetector
from streamseg.pipeline import CameraPipeline
from streamseg.sinks import build_sinks
from streamseg.sinks.base import FrameResult, Sink
from tests.fakes import FakeEngine, box_x
from tests.media import still_clip
from tests.sinks.schemas import validate


class Seen(NamedTuple):
    frame: int
    inferred: bool
    events: list[tuple[str, int, str]]  # (type, track_id, label)
    boxes: list[tuple[str, list[float]]]  # (label, xyxy)
    tracks: list[int]  # tracker_id per detection (-1: not confirmed)


class Recorder(Sink):
    """Every FrameResult the camera hands its sinks, as the sinks see it."""

    kind = "recorder"

    def __init__(self, camera: str) -> None:
        super().__init__(camera, block_when_full=True)
        self.seen: list[Seen] = []

    def write(self, result: FrameResult) -> None:
        d = result.detections
        labels = d.data.get("class_name", [""] * len(d))
        self.seen.append(
            Seen(
                result.frame,
                result.inferred,
                [(e.type, e.track_id, e.label) for e in result.events],
                [(str(label), box.tolist()) for label, box in zip(labels, d.xyxy, strict=True)],
                [] if d.tracker_id is None else [int(t) for t in d.tracker_id],
            )
        )


class Run(NamedTuple):
    camera: CameraPipeline
    seen: list[Seen]

    @property
    def inferred(self) -> set[int]:
        return {s.frame for s in self.seen if s.inferred}


def run(pool: StagePool, tmp: Path, name: str, video: Path, model: Path, **extra: object) -> Run:
    raw = {"source": {"url": str(video)}, "model": {"path": str(model)}, **extra}
    cfg = CameraConfig.model_validate(raw, context={"base_dir": tmp})
    stage = pool.stage(cfg.model)
    recorder = Recorder(name)
    camera = CameraPipeline(
        name, cfg, YoloModel.from_config(stage.info, cfg.model), stage, [recorder, *build_sinks(name, cfg)]
    )
    camera.start()
    assert camera.join(120), "the camera did not finish"
    assert camera.error is None, camera.error
    return Run(camera, recorder.seen)


# -- the detector ------------------------------------------------------------------------------------


def test_a_repeated_frame_is_still_and_a_change_is_boxed_where_it_is(bus_jpg: Path) -> None:
    image = cv2.imread(str(bus_jpg))  # 810 x 1080
    motion = MotionDetector(MotionConfig(enabled=True))
    assert motion(image).moving  # the first frame: nothing to compare with, all of it is new
    assert not motion(image.copy()).moving
    changed = image.copy()
    changed[600:700, 300:420] = 255 - changed[600:700, 300:420]
    (box,) = motion(changed).boxes
    assert box[0] <= 300 and box[1] <= 600 and box[2] >= 420 and box[3] >= 700
    assert box[2] - box[0] < 200 and box[3] - box[1] < 180  # around the change, not the whole frame


def test_masked_areas_never_trigger(bus_jpg: Path) -> None:
    image = cv2.imread(str(bus_jpg))
    left_half = [[0, 0], [405, 0], [405, 1080], [0, 1080]]
    motion = MotionDetector(MotionConfig(enabled=True, mask=[left_half]))
    motion(image)
    rng = np.random.default_rng(3)
    for _ in range(20):  # a flickering overlay in the masked half, frame after frame
        frame = image.copy()
        frame[rng.integers(0, 900) :][:150, 20:380] = rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)
        assert not motion(frame).moving
    frame = image.copy()
    frame[100:200, 500:600] = 0  # the other half counts
    assert motion(frame).moving


def test_small_changes_are_not_motion(bus_jpg: Path) -> None:
    image = cv2.imread(str(bus_jpg))
    motion = MotionDetector(MotionConfig(enabled=True))
    motion(image)
    noisy = np.clip(image.astype(np.int16) + np.random.default_rng(1).integers(-8, 9, image.shape), 0, 255)
    assert not motion(noisy.astype(np.uint8)).moving  # compression-like noise below the threshold
    speck = image.copy()
    speck[500:504, 400:404] = 0  # 16 pixels: below min_area
    assert not motion(speck).moving


# -- gating on the still clip ---------------------------------------------------------------------------


class StillRuns(NamedTuple):
    parts: tuple[range, range, range]
    gated: Run
    ungated: Run
    masked: Run
    jsonl: Path


@pytest.fixture(scope="module")
def still_runs(tmp_path_factory: pytest.TempPathFactory, bikes_mp4: Path, fast_seg_model: Path) -> StillRuns:
    tmp = tmp_path_factory.mktemp("still")
    clip = tmp / "still.mp4"
    parts = still_clip(bikes_mp4, clip)
    pool = StagePool(tmp)
    try:
        jsonl = {"jsonl": {"path": str(tmp / "gated.jsonl")}}
        gated = run(pool, tmp, "gated", clip, fast_seg_model, motion={"enabled": True}, outputs=jsonl)
        ungated = run(pool, tmp, "ungated", clip, fast_seg_model)
        whole_view = [[0, 0], [640, 0], [640, 272], [0, 272]]
        masking = {"enabled": True, "mask": [whole_view], "refresh_seconds": None}
        masked = run(pool, tmp, "masked", clip, fast_seg_model, motion=masking)
    finally:
        pool.close()
    return StillRuns(parts, gated, ungated, masked, tmp / "gated.jsonl")


def test_still_frames_are_rarely_inferred_and_every_moving_frame_is(still_runs: StillRuns) -> None:
    before, moving, after = still_runs.parts
    inferred = still_runs.gated.inferred
    still = set(before) | set(after)
    assert len(inferred & still) <= 0.10 * len(still), sorted(inferred & still)
    assert set(moving) <= inferred  # from the very first frame that moves
    assert still_runs.ungated.inferred == set(range(after.stop))


def test_the_moving_part_has_the_events_of_an_ungated_run(still_runs: StillRuns) -> None:
    moving = still_runs.parts[1]

    def events(r: Run) -> list[tuple[int, str, int, str]]:
        return [(s.frame, *e) for s in r.seen if s.frame >= moving.start for e in s.events]

    gated = events(still_runs.gated)
    assert len([e for e in gated if e[1] == "new"]) >= 5
    assert gated == events(still_runs.ungated)


def test_tracks_live_on_through_gated_frames(still_runs: StillRuns) -> None:
    """The objects in view when the scene stops moving keep their tracks through the still end: none of them ends."""
    after = still_runs.parts[2]
    last_moving = next(s for s in still_runs.gated.seen if s.frame == after.start - 1)
    confirmed = {t for t in last_moving.tracks if t >= 0}
    assert confirmed
    tail = [s for s in still_runs.gated.seen if s.frame in after]
    assert not any(s.inferred for s in tail)
    assert all(s.boxes == last_moving.boxes and confirmed <= set(s.tracks) for s in tail)
    ended = {e[1] for s in tail for e in s.events if e[0] == "end"}
    assert not ended & confirmed
    # the tracks lost before the scene stopped end meanwhile, when the lost-track buffer runs out, as ungated
    ungated_ended = {e[1] for s in still_runs.ungated.seen if s.frame in after for e in s.events if e[0] == "end"}
    assert ended == ungated_ended


def test_gated_frames_publish_no_detections_and_are_counted_apart(still_runs: StillRuns) -> None:
    camera = still_runs.gated.camera
    lines = [json.loads(line) for line in still_runs.jsonl.read_text().splitlines()]
    frames = [obj["frame"] for obj in lines if obj["topic"] == "detections"]
    assert frames == sorted(still_runs.gated.inferred)  # detections are per processed frame
    assert camera.stats.frames == len(frames)
    assert camera.stats.gated == still_runs.parts[2].stop - len(frames)
    stats = report.camera_stats(camera)
    assert stats["frames"] == camera.stats.frames and stats["gated"] == camera.stats.gated
    assert stats["wanted_fps"] == 25.0
    validate("stats", {"ts": 0.0, "cameras": {"gated": stats}})
    metrics = {
        sample.name: sample.value
        for family in CameraCollector(lambda: {"gated": camera}).collect()
        for sample in family.samples
        if "state" not in sample.labels and "sink" not in sample.labels
    }
    assert metrics["streamseg_camera_frames_total"] == camera.stats.frames
    assert metrics["streamseg_camera_gated_frames_total"] == camera.stats.gated
    assert metrics["streamseg_camera_wanted_fps"] == 25.0


def test_motion_only_in_masked_areas_runs_no_inference(still_runs: StillRuns) -> None:
    assert still_runs.masked.inferred == {0}  # the first frame only: the mask covers the whole view
    assert still_runs.masked.camera.stats.gated == still_runs.parts[2].stop - 1


# -- regions ---------------------------------------------------------------------------------------------

PASTE = (2690, 1400)  # where the small scene goes in the 4K frame (x, y)


@pytest.fixture(scope="module")
def small_in_4k(tmp_path_factory: pytest.TempPathFactory, zidane_jpg: Path) -> tuple[Path, tuple[int, int, int, int]]:
    """A 4K clip: an empty grey frame twice, then zidane.jpg scaled to 120 x 67 (its two people about 60 pixels
    tall: 5 pixels, under the model's smallest stride, once the 3840-wide frame is scaled to the 320 input) three
    times. Returns the clip and where the people are (x0, y0, x1, y1)."""
    tmp = tmp_path_factory.mktemp("regions")
    small = cv2.imread(str(zidane_jpg))
    small = cv2.resize(small, (120, 120 * small.shape[0] // small.shape[1]), interpolation=cv2.INTER_AREA)
    empty = np.full((2160, 3840, 3), 114, np.uint8)
    scene = empty.copy()
    x, y = PASTE
    scene[y : y + small.shape[0], x : x + small.shape[1]] = small
    clip = tmp / "4k.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "18", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        for image in [empty, empty, scene, scene, scene]:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    return clip, (x, y, x + small.shape[1], y + small.shape[0])


def people_in(seen: Seen, area: tuple[int, int, int, int]) -> int:
    x0, y0, x1, y1 = area
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for label, b in seen.boxes if label == "person"]
    return sum(x0 <= cx <= x1 and y0 <= cy <= y1 for cx, cy in centres)


def test_regions_find_what_the_whole_frame_scaled_down_misses(
    tmp_path: Path, small_in_4k: tuple[Path, tuple[int, int, int, int]], fast_seg_model: Path
) -> None:
    clip, area = small_in_4k
    pool = StagePool(tmp_path)
    try:
        on = run(pool, tmp_path, "on", clip, fast_seg_model, motion={"enabled": True, "regions": True})
        off = run(pool, tmp_path, "off", clip, fast_seg_model, motion={"enabled": True})
    finally:
        pool.close()
    assert on.inferred == off.inferred == {0, 2}  # the first frame, and the one where the scene appears
    appeared = {s.frame: s for s in on.seen}[2]
    assert people_in(appeared, area) >= 2
    assert all(people_in(s, area) == 0 for s in off.seen)
    # the still frames after it keep what the regions found, in full-frame coordinates
    assert all(people_in(s, area) == people_in(appeared, area) for s in on.seen if s.frame > 2)


# -- fair rates ------------------------------------------------------------------------------------------


def test_a_camera_that_asks_little_is_served_between_a_busy_cameras_frames() -> None:
    """Frames queue per camera and are served in turn: the still camera's one frame, queued after ten of the
    busy camera's, runs second, not eleventh; and the busy camera's frames still run in their order."""
    engine = FakeEngine()
    stage = InferenceStage([engine])
    busy = [np.full((1, 3, 320, 320), 0.1 + 0.01 * i, np.float32) for i in range(10)]
    still = np.full((1, 3, 320, 320), 0.9, np.float32)
    futures = [stage.submit(t, camera="busy") for t in busy] + [stage.submit(still, camera="still")]
    assert stage.queued_for("busy") == 10 and stage.queued_for("still") == 1
    order: list[str] = []
    for name, f in zip(["busy"] * 10 + ["still"], futures, strict=True):
        f.add_done_callback(lambda _f, name=name: order.append(name))
    stage.start()
    results = [f.result(10) for f in futures]
    stage.close()
    assert order[:2] == ["busy", "still"] and order.count("busy") == 10
    centres = [float(r.outputs[0][0, 0, 0]) for r in results[:10]]
    assert centres == sorted(centres) and centres[0] == pytest.approx(box_x(0.1), abs=0.1)
