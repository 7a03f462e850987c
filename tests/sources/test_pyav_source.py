"""VideoSource on real files: every frame, in order, pixel-exact; fps control; loop; broken inputs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from streamseg.sources.backoff import Backoff
from streamseg.sources.frame import Frame
from streamseg.sources.pyav_source import FpsGate, VideoSource, probe
from streamseg.sources.ring import RingBuffer
from tests.media import remux

WAIT_S = 60  # generous upper bound so a bug shows as a failure, never as a hung test run


def _collect(source: VideoSource, limit: int | None = None) -> list[Frame]:
    """Consume the ring until end of stream (or `limit` frames, then stop the source)."""
    frames = []
    source.start()
    try:
        while limit is None or len(frames) < limit:
            frame = source.ring.get(timeout=WAIT_S)
            if frame is None:
                assert source.ring.done, "no frame and no end of stream within the timeout"
                break
            # Keep a copy: the slot is reused once released.
            frames.append(Frame(frame.camera, frame.index, frame.pts, frame.capture_ts, frame.image.copy()))
            frame.release()
    finally:
        source.stop()
    return frames


def _decode_directly(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def test_probe(bikes_mp4: Path) -> None:
    info = probe(str(bikes_mp4))
    assert (info.width, info.height, info.fps, info.frame_count) == (640, 272, 25.0, 250)


def test_every_frame_in_order_and_pixel_exact(bikes_mp4: Path) -> None:
    source = VideoSource("bikes", str(bikes_mp4), ring=RingBuffer(4, "block"))
    frames = _collect(source)
    assert source.ended and source.error is None
    assert len(frames) == 250 == source.frames_decoded
    assert source.frames_skipped == 0
    assert [f.index for f in frames] == list(range(250))
    pts = np.array([f.pts for f in frames])
    assert (np.diff(pts) > 0).all()
    assert pts[0] == 0.0 and pts[-1] == pytest.approx(9.96)
    assert (source.width, source.height, source.source_fps) == (640, 272, 25.0)
    assert all(f.camera == "bikes" and f.image.shape == (272, 640, 3) for f in frames)
    reference = _decode_directly(bikes_mp4)
    assert len(reference) == 250
    for frame, expected in zip(frames, reference, strict=True):
        np.testing.assert_array_equal(frame.image, expected)


def test_loop_keeps_going_with_monotonic_pts(bikes_mp4: Path) -> None:
    source = VideoSource("bikes", str(bikes_mp4), loop=True, ring=RingBuffer(4, "block"))
    frames = _collect(source, limit=600)
    assert len(frames) == 600 and source.error is None
    assert [f.index for f in frames] == list(range(600))
    pts = np.array([f.pts for f in frames])
    assert (np.diff(pts) > 0).all()
    np.testing.assert_allclose(np.diff(pts), 0.04, atol=1e-6)  # no jump or stall at the seams
    reference = _decode_directly(bikes_mp4)
    np.testing.assert_array_equal(frames[250].image, reference[0])  # the second pass starts over
    np.testing.assert_array_equal(frames[599].image, reference[99])


def test_fps_control_skips_evenly(bikes_mp4: Path) -> None:
    source = VideoSource("bikes", str(bikes_mp4), ring=RingBuffer(4, "block"), fps=5)
    frames = _collect(source)
    assert source.error is None
    assert len(frames) == 50
    assert source.frames_decoded == 250 and source.frames_skipped == 200
    assert [f.index for f in frames] == list(range(0, 250, 5))
    np.testing.assert_allclose(np.diff([f.pts for f in frames]), 0.2, atol=1e-6)


def test_fps_gate_restarts_after_a_gap_or_jump_back() -> None:
    gate = FpsGate(fps=5, source_fps=25)
    admitted = [pts for pts in (0.0, 0.04, 0.2, 5.0, 5.04, 5.2, 1.0, 1.04, 1.2) if gate.admit(pts)]
    assert admitted == [0.0, 0.2, 5.0, 5.2, 1.0, 1.2]
    assert all(FpsGate(None, 25).admit(p) for p in (0.0, 0.0, 0.01))


def _run_broken(url: str) -> tuple[VideoSource, list[Frame]]:
    source = VideoSource("broken", url, ring=RingBuffer(4, "block"), timeout=5)
    frames = _collect(source)
    assert source.wait(WAIT_S), "the source did not end"
    return source, frames


def _assert_one_line_naming(error: str | None, url: str) -> None:
    assert error is not None and "\n" not in error
    assert error.startswith(url)


def test_missing_file(tmp_path: Path) -> None:
    url = str(tmp_path / "missing.mp4")
    source, frames = _run_broken(url)
    assert frames == []
    _assert_one_line_naming(source.error, url)
    assert "No such file" in source.error


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    source, frames = _run_broken(str(path))
    assert frames == []
    _assert_one_line_naming(source.error, str(path))


def test_file_without_a_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    source, frames = _run_broken(str(path))
    assert frames == []
    _assert_one_line_naming(source.error, str(path))
    assert "no video stream" in source.error


def test_truncated_file_ends_cleanly(bikes_mp4: Path, tmp_path: Path) -> None:
    data = bikes_mp4.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])
    source, frames = _run_broken(str(path))
    # Either a clean early end or a one-line error; never an exception escaping, never a hang.
    assert len(frames) < 250
    assert source.ended
    if source.error is not None:
        _assert_one_line_naming(source.error, str(path))


def test_password_never_in_the_error() -> None:
    url = "rtsp://admin:hunter2@127.0.0.1:9/stream"  # port 9 (discard): refused at once
    states: list[tuple[str, str | None]] = []
    source = VideoSource(
        "cam", url, ring=RingBuffer(4), timeout=5, backoff=Backoff(0.05, 0.05, 0), max_retries=2,
        on_state=lambda state, error: states.append((state, error)),
    )  # fmt: skip
    frames = _collect(source)
    assert source.wait(WAIT_S)
    assert frames == [] and source.reconnects == 2
    assert source.error is not None and "hunter2" not in source.error
    assert source.error.startswith("rtsp://admin:***@127.0.0.1:9/stream")
    assert source.error.endswith("(gave up after 2 retries)")
    assert [s for s, _ in states] == ["reconnecting", "failed"]  # each change once, not once per attempt
    assert all("hunter2" not in (e or "") for _, e in states)


def test_stop_releases_a_producer_blocked_on_a_full_ring(bikes_mp4: Path) -> None:
    ring = RingBuffer(2, "block")
    source = VideoSource("bikes", str(bikes_mp4), ring=ring)
    source.start()
    first = ring.get(timeout=WAIT_S)  # the producer fills the other slot, then waits for a free one
    assert first is not None
    source.stop(timeout=WAIT_S)
    assert source.ended and source.error is None
    first.release()


def test_truncated_faststart_file_gives_the_frames_before_the_cut(bikes_mp4: Path, tmp_path: Path) -> None:
    # With the index (moov) at the front, a cut file still opens: decoding must stop at the cut.
    faststart = remux(bikes_mp4, tmp_path / "faststart.mp4", options={"movflags": "faststart"})
    data = faststart.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])
    source, frames = _run_broken(str(path))
    assert 0 < len(frames) < 250
    assert [f.index for f in frames] == list(range(len(frames)))
    if source.error is not None:
        _assert_one_line_naming(source.error, str(path))


def test_realtime_reads_a_file_at_its_frame_rate(bikes_mp4: Path) -> None:
    """realtime: frames come as a 25 fps camera delivers them (their capture times follow pts); without it the
    same frames come several times faster."""
    paced = _collect(VideoSource("bikes", str(bikes_mp4), realtime=True, ring=RingBuffer(4, "block")), limit=50)
    fast = _collect(VideoSource("bikes", str(bikes_mp4), ring=RingBuffer(4, "block")), limit=50)
    assert [f.index for f in paced] == list(range(50))
    spent = paced[-1].capture_ts - paced[0].capture_ts
    assert spent == pytest.approx(49 / 25, abs=0.25), spent
    assert fast[-1].capture_ts - fast[0].capture_ts < 0.5 * 49 / 25
