"""Damaged video: packets the decoder refuses are skipped and counted, a hopeless file still fails in one line.

The reference for "what FFmpeg decodes" is FFmpeg's own error-tolerant decode of the same damaged copy
(tests.media.decode_tolerantly: the ffmpeg CLI logs a refused packet and goes on; it is not installed here).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest

from streamseg.sources.backoff import Backoff
from streamseg.sources.pyav_source import VideoSource
from streamseg.sources.ring import RingBuffer
from tests.media import damage, decode_tolerantly, mjpeg_parts, remux, scramble_after_header
from tests.rtsp import RtspServer, gst_rtsp_available
from tests.sources.test_pyav_source import WAIT_S, _collect

SKIPPING = "skipping undecodable data"
SKIPPED = re.compile(r"skipped (\d+) undecodable packets")


def _source(path: Path, states: list[tuple[str, str | None]], **kw: object) -> VideoSource:
    return VideoSource(
        "yard", str(path), ring=RingBuffer(4, "block"), timeout=5, on_state=lambda s, e: states.append((s, e)), **kw
    )


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "streamseg.sources.pyav_source"]


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("layout", ["index at the end", "faststart"])
def test_a_damaged_file_gives_every_frame_ffmpeg_decodes(
    layout: str, bikes_mp4: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """50 KB of random bytes in the middle of the real clip: the camera goes on after the damage."""
    src = (
        bikes_mp4
        if layout == "index at the end"
        else remux(bikes_mp4, tmp_path / "fs.mp4", options={"movflags": "faststart"})
    )
    path = damage(src, tmp_path / "damaged.mp4", size=50_000, seed=12)
    reference = decode_tolerantly(path)
    assert 200 < len(reference.frames) < 250 and reference.bad_packets > 10  # the damage is real, and survivable

    caplog.set_level(logging.INFO)
    states: list[tuple[str, str | None]] = []
    source = _source(path, states)
    frames = _collect(source)
    assert source.wait(WAIT_S)

    assert states[-1] == ("stopped", None) and source.error is None
    # Frame threads (as in the CLI) may hand back one frame more or less next to the damage.
    assert len(frames) >= len(reference.frames) - 2, (len(frames), len(reference.frames))
    assert [f.index for f in frames] == list(range(len(frames)))
    np.testing.assert_array_equal(frames[0].image, reference.frames[0])
    np.testing.assert_array_equal(frames[-1].image, reference.frames[-1])  # it resynced: the end is intact
    assert source.bad_packets == reference.bad_packets

    # One warning when the burst starts, one when it ends with the count; never one per packet.
    messages = _messages(caplog)
    started = [m for m in messages if SKIPPING in m]
    ended = [int(m[1]) for m in map(SKIPPED.search, messages) if m]
    assert len(started) == 1 and "'yard'" in started[0] and str(path) in started[0], messages
    assert ended == [reference.bad_packets], messages


def test_a_file_with_nothing_decodable_fails_in_one_line(bikes_mp4: Path, tmp_path: Path) -> None:
    """The index is intact, every byte of media data random: it opens, nothing decodes, `failed`."""
    faststart = remux(bikes_mp4, tmp_path / "fs.mp4", options={"movflags": "faststart"})
    path = scramble_after_header(faststart, tmp_path / "hopeless.mp4")
    states: list[tuple[str, str | None]] = []
    source = _source(path, states)
    frames = _collect(source)
    assert source.wait(WAIT_S), "the source did not end"
    assert frames == [] and source.bad_packets > 200
    assert states[-1][0] == "failed" and states[-1][1] == source.error
    assert source.error is not None and "\n" not in source.error
    assert source.error.startswith(f"{path}: no frame could be decoded ({source.bad_packets} undecodable packets")


def test_a_file_gives_up_after_too_long_a_run_of_undecodable_packets(bikes_mp4: Path, tmp_path: Path) -> None:
    path = damage(bikes_mp4, tmp_path / "damaged.mp4", size=50_000, seed=12)  # a run of 31 refused packets
    states: list[tuple[str, str | None]] = []
    source = _source(path, states, max_bad_packets=10)
    frames = _collect(source)
    assert source.wait(WAIT_S)
    assert 90 < len(frames) < 120  # what came before the damage
    assert source.bad_packets == 10
    assert states[-1] == ("failed", source.error)
    assert source.error is not None and source.error.startswith(
        f"{path}: gave up after 10 undecodable packets in a row (nothing decoded"
    )


def _break_part(path: Path, part: int, how: str) -> None:
    """Damage the header of one part of a multipart (mpjpeg) stream."""
    data = bytearray(path.read_bytes())
    pos = -1
    for _ in range(part + 1):
        pos = data.index(b"Content-type: ", pos + 1)
    if how == "length":  # overstated: the demuxer swallows the next part, then has to find a boundary again
        pos = data.index(b"Content-length: ", pos) + len(b"Content-length: ")
        data[pos : pos + 2] = b"99"
    else:  # a header the demuxer refuses every time it is asked
        data[pos : pos + 1] = b"X"
    path.write_bytes(data)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (None, 50),  # FFmpeg's mpjpeg demuxer reports its end as invalid data: still the end, not a failure
        ("length", 49),  # it raises at the broken part and finds the next boundary when asked again
        ("type", 25),  # it never gets past the part: the input ends there, as for the ffmpeg CLI
    ],
)
def test_mjpeg_parts_with_a_broken_header(
    how: str | None, expected: int, bikes_mp4: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What an MJPEG camera sends over http, as a file; before: `failed` at the end, or at the broken part."""
    path = mjpeg_parts(bikes_mp4, tmp_path / "cam.mjpeg", frames=50)
    if how:
        _break_part(path, 25, how)
    states: list[tuple[str, str | None]] = []
    source = _source(path, states)
    frames = _collect(source)
    assert source.wait(WAIT_S)
    assert len(frames) == expected
    assert states[-1] == ("stopped", None)
    messages = _messages(caplog)
    assert (source.bad_packets > 0) == (how == "length"), messages  # the reads that failed before it resynced
    ended_early = [m for m in messages if "the demuxer cannot read on" in m]
    assert len(ended_early) == (how == "type"), messages


def test_a_damaged_live_stream_skips_and_warns_without_the_password(
    bikes_mp4: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The damaged clip re-streamed by the real RTSP server: the camera keeps streaming through the damage."""
    if not gst_rtsp_available():
        pytest.skip("GStreamer's RTSP server is not installed for /usr/bin/python3 (see tests/rtsp.py)")
    path = damage(bikes_mp4, tmp_path / "damaged.mp4", size=50_000, seed=12)
    reference = decode_tolerantly(path)
    server = RtspServer(path)
    server.start()
    states: list[str] = []
    url = server.url("bikes", userinfo="admin:hunter2")
    source = VideoSource(
        "gate",
        url,
        ring=RingBuffer(4, "block"),
        timeout=5,
        backoff=Backoff(5, 5, 0),
        on_state=lambda s, e: states.append(s),
    )
    try:
        source.start()
        deadline = time.monotonic() + WAIT_S
        while "reconnecting" not in states and time.monotonic() < deadline:  # the server ends after one pass
            frame = source.ring.get(timeout=0.5)
            if frame is not None:
                frame.release()
        source.stop()
    finally:
        server.stop()
    assert states[:2] == ["streaming", "reconnecting"]  # no reconnect before the end of the clip
    assert source.frames_decoded >= len(reference.frames) - 2, (source.frames_decoded, len(reference.frames))
    assert source.bad_packets > 0  # GStreamer re-packetizes, so fewer (larger) refused packets than in the file
    messages = _messages(caplog)
    redacted = url.replace("hunter2", "***")
    assert [m for m in messages if SKIPPING in m] == [
        f"camera 'gate' ({redacted}): skipping undecodable data: Invalid data found when processing input"
    ]
    assert [int(m[1]) for m in map(SKIPPED.search, messages) if m] == [source.bad_packets]
    assert "hunter2" not in _log_text(caplog)
