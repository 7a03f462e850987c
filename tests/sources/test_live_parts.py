"""The small parts of live sources: backoff, FFmpeg options per kind, decoder and allocator choice."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from streamseg.sources.backoff import Backoff
from streamseg.sources.hwdecode import hw_decoder_name
from streamseg.sources.kinds import open_args, source_kind
from streamseg.sources.pyav_source import VideoSource
from streamseg.sources.ring import RingBuffer


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    plain = Backoff(1.0, 30.0, jitter=0.0)
    assert [plain.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    plain.reset()
    assert plain.next() == 1
    jittery = Backoff(1.0, 8.0, jitter=0.2, rng=random.Random(1))
    waits = [jittery.next() for _ in range(200)]
    assert 0.8 <= waits[0] <= 1.2 and all(6.4 <= w <= 9.6 for w in waits[3:])
    assert len({round(w, 6) for w in waits[3:]}) > 100  # spread, so cameras do not retry in lockstep


def test_source_kinds() -> None:
    assert source_kind("rtsp://cam/stream") == "rtsp" and source_kind("RTSPS://cam/s") == "rtsp"
    assert source_kind("https://host/live.m3u8") == "http"
    assert source_kind("/dev/video0") == "v4l2"
    assert source_kind("srt://host:9000") == "stream"
    assert source_kind("/data/clip.mp4") == "file"


def test_open_args_per_kind() -> None:
    rtsp = open_args("rtsp://cam/s", timeout=5, transport="udp")
    assert rtsp.format is None
    assert rtsp.options["rtsp_transport"] == "udp" and rtsp.options["timeout"] == "5000000"  # microseconds
    assert open_args("rtsp://cam/s", timeout=5).options["rtsp_transport"] == "tcp"
    assert open_args("http://cam/mjpeg", timeout=2.5).options["rw_timeout"] == "2500000"
    usb = open_args("/dev/video0", timeout=5, video_size="1280x720", framerate=30, input_format="mjpeg")
    assert usb.format == "v4l2"
    assert usb.options == {"video_size": "1280x720", "framerate": "30", "input_format": "mjpeg", "fflags": "nobuffer"}
    assert open_args("/data/clip.mp4", timeout=5).options == {}  # files: FFmpeg's defaults
    # a recording over http keeps FFmpeg's buffering (nobuffer drops the tail of an HLS playlist)
    assert "fflags" not in open_args("http://nas/clip.m3u8", timeout=5, live=False).options
    assert open_args("http://nas/live.m3u8", timeout=5).options["fflags"] == "nobuffer"
    mine = open_args("rtsp://cam/s", timeout=5, extra={"rtsp_transport": "http", "fflags": "+genpts"})
    assert mine.options["rtsp_transport"] == "http" and mine.options["fflags"] == "+genpts"  # the user's win


def test_hw_decoder_choice() -> None:
    assert hw_decoder_name("h264", "cuda") == "h264_cuvid" and hw_decoder_name("hevc", "cuda") == "hevc_cuvid"
    assert hw_decoder_name("mjpeg", "cuda") is None and hw_decoder_name("h264", "none") is None


def test_cuda_decode_falls_back_to_software_with_one_warning(bikes_mp4: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No GPU here: h264_cuvid exists in PyAV's FFmpeg but cannot open, so every frame is decoded in software."""
    caplog.set_level(logging.WARNING)
    source = VideoSource("cam", str(bikes_mp4), ring=RingBuffer(4, "block"), loop=True, hwaccel="cuda")
    source.start()
    n = 0
    while n < 300:  # past the loop's seam
        frame = source.ring.get(timeout=60)
        assert frame is not None
        frame.release()
        n += 1
    source.stop()
    assert source.error is None
    warnings = [r.getMessage() for r in caplog.records if "software" in r.getMessage()]
    assert len(warnings) == 1 and "h264_cuvid" in warnings[0], warnings
