"""http(s) sources against a real HTTP server: an HLS playlist of the real video, as a recording and as live."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamseg.config import load_config
from streamseg.daemon import Daemon
from streamseg.sources.backoff import Backoff
from streamseg.sources.pyav_source import VideoSource
from streamseg.sources.ring import RingBuffer
from tests.media import remux
from tests.sources.test_live import _frames


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hls(tmp_path_factory: pytest.TempPathFactory, bikes_mp4: Path) -> Iterator[str]:
    """bikes.mp4 remuxed (no re-encode) into a 2-second-segment HLS VOD playlist, served on a free port."""
    folder = tmp_path_factory.mktemp("hls")
    remux(bikes_mp4, folder / "index.m3u8", format="hls", options={"hls_time": "2", "hls_playlist_type": "vod"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
    server.shutdown()


def test_hls_recording_gives_every_frame_and_ends(tmp_path: Path, hls: str, seg_model: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        f"""
cameras:
  hls:
    source: {{url: "{hls}", live: false}}
    model: {{path: {seg_model}}}
    tracker: {{type: none}}
    fps: 5
    outputs: {{jsonl: {{path: hls.jsonl}}}}
"""
    )
    daemon = Daemon(load_config(path), path)
    assert daemon.run(handle_signals=False) == 0
    assert daemon.cameras["hls"].state == "stopped"
    frames = [json.loads(line) for line in (tmp_path / "hls.jsonl").read_text().splitlines()]
    assert 49 <= len(frames) <= 51 and all((f["width"], f["height"]) == (640, 272) for f in frames)
    assert sum(len(f["detections"]) for f in frames) > 50  # the real video, decoded through HTTP


def test_hls_as_live_reconnects_at_the_end_of_the_playlist(hls: str) -> None:
    states: list[str] = []
    source = VideoSource(
        "hls",
        hls,
        ring=RingBuffer(4, "block"),  # block: count every frame of both passes
        timeout=5,
        backoff=Backoff(0.2, 0.5, 0),
        on_state=lambda state, error: states.append(state),
    )
    assert source.live  # an http URL is live unless the config says otherwise
    source.start()
    frames = _frames(source, 300)
    source.stop()
    assert len(frames) == 300 and source.reconnects >= 1
    assert states[:3] == ["streaming", "reconnecting", "streaming"]
    assert all(shape == (272, 640, 3) for _, _, shape in frames)
