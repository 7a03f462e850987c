"""The shared H.264 encoder: codec choice with NVENC's fallback (no GPU needed), size, fps cap, rate control."""

from __future__ import annotations

import logging

import av
import pytest

from streamseg.sinks import encoder
from streamseg.sinks.encoder import Encoding, FrameEncoder, choose_codec, output_size
from streamseg.vocab import VideoEncoder
from tests.sinks.frames import scene


@pytest.fixture
def nvenc(monkeypatch: pytest.MonkeyPatch):
    """Pretend NVENC opens (None) or fails with a reason; counts the probes."""
    probes = []

    def set_result(error: str | None) -> list:
        monkeypatch.setattr(encoder, "nvenc_error", lambda: probes.append(1) or error)
        return probes

    return set_result


def test_auto_takes_nvenc_when_it_opens(nvenc) -> None:
    nvenc(None)
    assert choose_codec(VideoEncoder.AUTO) == "h264_nvenc"
    assert choose_codec(VideoEncoder.H264_NVENC) == "h264_nvenc"


def test_auto_without_a_gpu_encoder_is_libx264_and_says_why(nvenc, caplog) -> None:
    nvenc("avcodec_open2: No NVENC capable devices found")
    with caplog.at_level(logging.INFO, logger="streamseg.sinks.encoder"):
        assert choose_codec(VideoEncoder.AUTO, "rtsp output rtsp://x/front") == "libx264"
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "rtsp output rtsp://x/front" in caplog.text and "No NVENC capable devices" in caplog.text


def test_asking_for_nvenc_without_one_falls_back_with_a_warning(nvenc, caplog) -> None:
    nvenc("this FFmpeg (PyAV) has no h264_nvenc encoder")
    with caplog.at_level(logging.INFO, logger="streamseg.sinks.encoder"):
        assert choose_codec(VideoEncoder.H264_NVENC, "hls output /x/index.m3u8") == "libx264"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "falling back to libx264" in record.message and "no h264_nvenc encoder" in record.message


def test_libx264_never_probes_the_gpu(nvenc) -> None:
    probes = nvenc(None)
    assert choose_codec(VideoEncoder.LIBX264) == "libx264"
    assert probes == []


def test_the_real_probe_answers_without_raising() -> None:
    # On a machine without an NVIDIA GPU this is the reason; with one, None. Either way no exception.
    encoder.nvenc_error.cache_clear()
    error = encoder.nvenc_error()
    assert error is None or (isinstance(error, str) and error)


def test_rate_control_options() -> None:
    x264 = Encoding(bitrate=1500).options("libx264", keyint=50)
    assert x264["tune"] == "zerolatency" and x264["g"] == "50"
    assert (x264["b"], x264["maxrate"], x264["bufsize"]) == ("1500k", "1500k", "3000k") and "crf" not in x264
    assert Encoding(crf=30).options("libx264", keyint=25)["crf"] == "30"
    nv = Encoding(bitrate=4000).options("h264_nvenc", keyint=50)
    assert (nv["rc"], nv["b"], nv["tune"], nv["zerolatency"], nv["bf"]) == ("cbr", "4000k", "ll", "1", "0")
    assert Encoding(crf=28).options("h264_nvenc", keyint=50)["cq"] == "28"
    file = Encoding(low_latency=False)  # a video file: smaller output beats a frame out at once
    assert "tune" not in file.options("libx264", keyint=50)
    assert file.options("h264_nvenc", keyint=50)["tune"] == "hq" and "zerolatency" not in file.options("h264_nvenc", 9)


def test_output_size_keeps_the_aspect_and_even_sides() -> None:
    assert output_size(641, 273, None) == (640, 272)
    assert output_size(1920, 1080, 640) == (640, 360)
    assert output_size(640, 272, 321) == (320, 136)


def _encode(tmp_path, encoding: Encoding, frames: int, fps: float = 25.0) -> tuple[list, FrameEncoder]:
    path = tmp_path / "out.mp4"
    container = av.open(str(path), "w")
    enc = FrameEncoder(encoding, "libx264", keyframe_seconds=1.0)
    enc.open(container, 640, 360, fps)
    for i in range(frames):
        container.mux(enc.encode(scene(i), i / fps))
    container.mux(enc.flush())
    container.close()
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        decoded = list(c.decode(stream))
        return [(f.width, f.height, f.pts, f.key_frame) for f in decoded], enc


def test_an_fps_cap_skips_frames_and_keeps_the_timeline(tmp_path) -> None:
    frames, enc = _encode(tmp_path, Encoding(fps=5, width=320, preset="ultrafast"), frames=50)  # 2 s at 25 fps
    assert len(frames) == 10 and enc.frames == 10  # 2 s at 5 fps
    assert {(w, h) for w, h, _, _ in frames} == {(320, 180)}
    assert enc.seconds() == pytest.approx(2.0)
    keys = [key for *_, key in frames]
    assert keys[0] and sum(keys) == 2  # a keyframe every second


def test_without_a_cap_every_frame_is_encoded(tmp_path) -> None:
    frames, enc = _encode(tmp_path, Encoding(preset="ultrafast"), frames=30)
    assert len(frames) == 30 and {(w, h) for w, h, _, _ in frames} == {(640, 360)}


def test_nvenc_that_will_not_open_falls_back_to_libx264_and_the_file_plays(nvenc, tmp_path, caplog) -> None:
    """The probe said yes, opening the real h264_nvenc says no (here: no NVIDIA GPU; elsewhere: sessions full)."""
    from streamseg.sinks.video import VideoSink
    from tests.sinks.frames import decode, live_results

    if encoder.nvenc_error() is None:  # a real NVENC: nothing falls back
        pytest.skip("h264_nvenc opens on this machine")
    nvenc(None)
    sink = VideoSink("front", tmp_path / "front.mp4", encoding=Encoding(preset="ultrafast"), block_when_full=True)
    with caplog.at_level(logging.WARNING):
        sink.start()
        for result in live_results(10):
            sink.submit(result)
        sink.stop()
    assert sink.error is None and sink.codec == "libx264"
    assert "h264_nvenc would not open" in caplog.text and "falling back to libx264" in caplog.text
    codec, size, frames = decode(str(sink.files[0]))
    assert codec == "h264" and size == (640, 360) and len(frames) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["front.mp4"]  # the abandoned attempt left no empty file
