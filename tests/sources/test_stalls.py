"""A live camera that goes silent is reported as timed out / stalled, never as FFmpeg's "Invalid data found".

FFmpeg's RTSP demuxer turns a read its timeout interrupted into AVERROR_INVALIDDATA; these tests use a real
socket that never answers and the real RTSP server frozen mid-stream.
"""

from __future__ import annotations

import logging
import socket

import pytest

from streamseg.config.source import SourceConfig
from streamseg.sources.backoff import Backoff
from streamseg.sources.pyav_source import VideoSource
from streamseg.sources.ring import RingBuffer
from tests.rtsp import rtsp_server  # noqa: F401 - the fixture
from tests.sources.test_live import _frames

WAIT_S = 60


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_a_camera_that_never_answers_times_out(scheme: str, caplog: pytest.LogCaptureFixture) -> None:
    """The TCP connection is accepted (by the kernel's backlog) and not one byte comes back."""
    caplog.set_level(logging.DEBUG, logger="streamseg")
    states: list[tuple[str, str | None]] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:
        where = f"127.0.0.1:{silent.getsockname()[1]}/stream"
        cfg = SourceConfig(
            url=f"{scheme}://admin:hunter2@{where}",
            timeout=1,
            reconnect={"initial": 0.05, "max": 0.05, "jitter": 0, "max_retries": 1},
        )
        source = VideoSource.from_config("door", cfg, ring=RingBuffer(4), on_state=lambda s, e: states.append((s, e)))
        source.start()
        assert source.wait(WAIT_S)
    timed_out = f"{scheme}://admin:***@{where}: timed out opening the stream (no answer within 1 s)"
    assert states == [("reconnecting", timed_out), ("failed", f"{timed_out} (gave up after 1 retries)")]
    assert "Invalid data" not in _log_text(caplog) and "hunter2" not in _log_text(caplog)


def test_a_camera_that_hangs_mid_stream_is_reported_as_stalled(
    rtsp_server,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server freezes (SIGSTOP) while streaming and stays frozen: stalled, then every reopen times out."""
    caplog.set_level(logging.DEBUG, logger="streamseg")
    states: list[tuple[str, str | None]] = []
    source = VideoSource(
        "cam",
        rtsp_server.url("test"),
        ring=RingBuffer(4, "drop_oldest"),
        timeout=2,
        stall_timeout=1.5,
        backoff=Backoff(0.1, 0.1, 0),
        max_retries=1,
        on_state=lambda s, e: states.append((s, e)),
    )
    source.start()
    assert len(_frames(source, 10)) == 10
    rtsp_server.pause()
    try:
        assert source.wait(WAIT_S)
    finally:
        rtsp_server.resume()
    assert [s for s, _ in states] == ["streaming", "reconnecting", "failed"], states
    url = rtsp_server.url("test")
    stalled, failed = states[1][1], states[2][1]
    assert stalled is not None and stalled.startswith(f"{url}: no frame for ") and stalled.endswith(" s (stalled)")
    assert failed == f"{url}: timed out opening the stream (no answer within 2 s) (gave up after 1 retries)"
    assert "Invalid data" not in _log_text(caplog)
