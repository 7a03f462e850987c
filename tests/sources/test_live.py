"""Live sources against a real RTSP server: streaming, a stream that ends, a hung camera, a resolution change."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np

from streamseg.sources.backoff import Backoff
from streamseg.sources.pyav_source import VideoSource
from streamseg.sources.ring import RingBuffer
from tests.rtsp import rtsp_server  # noqa: F401 - the fixture

WAIT_S = 60


def _live(url: str, states: list[str] | None = None, **kw) -> VideoSource:
    return VideoSource(
        "cam",
        url,
        ring=RingBuffer(4, "drop_oldest"),
        timeout=5,
        backoff=Backoff(0.2, 0.5, 0),
        on_state=(lambda s, e: states.append(s)) if states is not None else None,
        **kw,
    )


def _frames(source: VideoSource, n: int, timeout: float = WAIT_S) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        frame = source.ring.get(timeout=0.5)
        if frame is not None:
            out.append((frame.index, frame.pts, frame.image.shape))
            frame.release()
    return out


def test_rtsp_streams_over_tcp_and_udp(rtsp_server) -> None:  # noqa: F811
    for transport in ("tcp", "udp"):
        states: list[str] = []
        source = _live(rtsp_server.url("test"), states, options={"rtsp_transport": transport})
        source.start()
        frames = _frames(source, 25)
        source.stop()
        assert source.wait(WAIT_S)
        assert len(frames) == 25 and all(shape == (240, 320, 3) for _, _, shape in frames), transport
        assert states == ["streaming", "stopped"] and source.error is None
        assert source.source_fps == 25.0


def test_a_stream_that_ends_is_reopened_with_pts_still_increasing(rtsp_server) -> None:  # noqa: F811
    """/bikes ends after its 250 frames (a truncated stream): the source reconnects and goes on."""
    states: list[str] = []
    source = _live(rtsp_server.url("bikes"), states)
    source.start()
    frames = _frames(source, 300, timeout=90)
    source.stop()
    assert len(frames) == 300 and source.reconnects >= 1
    assert states[:3] == ["streaming", "reconnecting", "streaming"]
    pts = np.array([p for _, p, _ in frames])
    assert (np.diff(pts) > 0).all()  # rebased after the reconnect: the tracker never sees time go back
    assert [i for i, _, _ in frames] == sorted(i for i, _, _ in frames)


def test_a_hung_camera_is_caught_by_the_stall_watchdog(rtsp_server) -> None:  # noqa: F811
    states: list[str] = []
    source = _live(rtsp_server.url("test"), states, stall_timeout=1.5)
    source.start()
    assert len(_frames(source, 10)) == 10
    rtsp_server.pause()  # connection open, nothing arrives
    t0 = time.monotonic()
    while "reconnecting" not in states and time.monotonic() - t0 < 20:
        time.sleep(0.05)
    detected = time.monotonic() - t0
    rtsp_server.resume()
    assert "reconnecting" in states, states
    assert detected < 10  # stall_timeout 1.5 s, with generous slack
    assert len(_frames(source, 10)) == 10  # and it streams again
    source.stop()
    assert states[-1] == "stopped" and states.count("streaming") >= 2


def test_resolution_change_mid_stream(tmp_path: Path) -> None:
    # Two H.264 segments of different sizes in one MPEG-TS (TS concatenates): the decoder re-initialises.
    path = tmp_path / "switch.ts"
    with path.open("wb") as out:
        for w, h in ((320, 240), (640, 480)):
            part = tmp_path / f"{w}.ts"
            with av.open(str(part), "w") as container:
                stream = container.add_stream("libx264", rate=25)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                for i in range(25):
                    image = np.full((h, w, 3), i * 8, np.uint8)
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
                container.mux(stream.encode())
            out.write(part.read_bytes())
    source = VideoSource("cam", str(path), ring=RingBuffer(4, "block"))
    source.start()
    frames = _frames(source, 50)
    assert source.wait(WAIT_S) and source.error is None
    shapes = [s for _, _, s in frames]
    assert shapes[0] == (240, 320, 3) and shapes[-1] == (480, 640, 3)
    assert (source.width, source.height) == (640, 480)


def test_pts_jumps_on_a_live_source_are_rebased() -> None:
    source = _live("rtsp://127.0.0.1:9/x")
    source.source_fps = 25.0
    raw = [None, 0.04, 0.08, 100.0, 100.04, 3.0, 3.04]  # no pts first, a jump forward, a clock reset back
    pts = [source._pts(SimpleNamespace(time=t)) for t in raw]
    assert pts[:3] == [0.0, 0.04, 0.08]
    assert (np.diff(pts) > 0).all() and max(np.diff(pts)) < 1.0
    np.testing.assert_allclose(np.diff(pts)[[3, 5]], 0.04)  # a frame after a plain step keeps its spacing
