"""RtspSink: annotated H.264 published to a real RTSP server in RECORD mode, read back with PyAV."""

from __future__ import annotations

import time

import pytest

from streamseg.sinks.encoder import Encoding
from streamseg.sinks.rtsp import RtspSink
from tests.rtsp import rtsp_record_server  # noqa: F401 - the fixture
from tests.sinks.frames import decode, live_results


def _push(sink: RtspSink, results, fps: float = 25.0) -> None:
    for result in results:  # in real time, as a live camera hands them over
        sink.submit(result)
        time.sleep(1 / fps)


def _wait_for_recording(server, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(server.recordings()) < n and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_annotated_stream_reaches_the_server(rtsp_record_server) -> None:  # noqa: F811
    sink = RtspSink("front", rtsp_record_server.url("push"), Encoding(width=320, preset="ultrafast"))
    sink.start()
    _push(sink, live_results(50))  # 2 s
    sink.stop()
    assert sink.error is None and sink.connects == 1 and sink.dropped == 0
    (recording,) = rtsp_record_server.recordings()
    codec, size, frames = decode(str(recording))
    assert codec == "h264" and size == (320, 180)  # 640x360 scaled to width 320
    assert len(frames) >= 45  # every frame pushed arrived (a few may still be in flight at TEARDOWN)
    assert not (frames[10] == frames[11]).all()  # the scene moves: these are the live frames, not a still


def test_a_server_that_goes_away_is_retried_and_frames_are_dropped_meanwhile(rtsp_record_server) -> None:  # noqa: F811
    sink = RtspSink("front", rtsp_record_server.url("push"), Encoding(preset="ultrafast", width=320), queue_size=4)
    sink.retry_initial = 0.2
    sink.start()
    _push(sink, live_results(25))
    rtsp_record_server.stop()  # the server dies without a word
    _push(sink, live_results(50, start=25))
    assert sink.error is not None and sink.error.startswith(f"rtsp output {rtsp_record_server.url('push')}: [Errno ")
    assert sink.dropped > 0 and sink.state == "failing"
    rtsp_record_server.start()
    _push(sink, live_results(75, start=75))  # 3 s: enough for the next retries
    sink.stop()
    assert sink.error is None and sink.connects == 2
    first, second = rtsp_record_server.recordings()
    assert len(decode(str(first))[2]) >= 15
    codec, size, frames = decode(str(second))
    assert codec == "h264" and size == (320, 180) and len(frames) >= 25


@pytest.mark.parametrize("url", ["rtsp://user:s3cret@127.0.0.1:9/push"])
def test_a_server_that_is_not_there_is_named_without_its_password(url: str) -> None:
    sink = RtspSink("front", url, Encoding(preset="ultrafast"), timeout=1.0)
    sink.start()
    _push(sink, live_results(5))
    deadline = time.monotonic() + 5
    while sink.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.stop(timeout=0.5)
    assert sink.error == "rtsp output rtsp://user:***@127.0.0.1:9/push: [Errno 111] Connection refused"
