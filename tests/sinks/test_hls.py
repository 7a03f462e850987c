"""HlsSink: a live playlist whose segments each decode on their own, with old segments deleted."""

from __future__ import annotations

from pathlib import Path

import av

from streamseg.sinks.encoder import Encoding
from streamseg.sinks.hls import HlsSink
from tests.sinks.frames import decode, live_results


def _listed(playlist: Path) -> list[str]:
    return [line for line in playlist.read_text().splitlines() if line and not line.startswith("#")]


def test_a_bounded_live_playlist_of_playable_segments(tmp_path: Path) -> None:
    folder = tmp_path / "hls" / "front"
    folder.mkdir(parents=True)
    (folder / "segment-17.ts").write_bytes(b"an earlier run's")  # deleted at start
    (folder / "notes.txt").write_text("not ours")  # never touched
    sink = HlsSink("front", folder, Encoding(preset="ultrafast", width=320), segment_seconds=1, list_size=3)
    sink.block_when_full = True  # the test hands frames faster than real time: keep every one
    sink.start()
    for result in live_results(200):  # 8 s of video at 25 fps
        sink.submit(result)
    sink.stop()
    assert sink.error is None and sink.dropped == 0

    listed = _listed(folder / "index.m3u8")
    assert len(listed) == 3 and all(name.startswith("segment-") for name in listed)
    on_disk = sorted(p.name for p in folder.glob("segment-*"))
    assert "segment-17.ts" not in on_disk and len(on_disk) <= 3 + 2  # 8 written, the oldest deleted
    assert (folder / "notes.txt").read_text() == "not ours"
    assert "#EXT-X-TARGETDURATION:1" in (folder / "index.m3u8").read_text()
    for name in listed:  # each decodes alone: starts with a keyframe, holds ~1 s at the output size
        with av.open(str(folder / name)) as container:
            first = next(container.decode(video=0))
            assert first.key_frame and (first.width, first.height) == (320, 180)
        assert 20 <= len(decode(str(folder / name))[2]) <= 30
    codec, size, frames = decode(str(folder / "index.m3u8"))  # and the playlist plays them in a row
    assert codec == "h264" and size == (320, 180) and 60 <= len(frames) <= 80


def test_the_frame_shared_with_other_sinks_is_never_drawn_on(tmp_path: Path) -> None:
    from streamseg.sinks.rtsp import RtspSink

    results = list(live_results(3))
    originals = [r.image.copy() for r in results]
    hls = HlsSink("front", tmp_path / "hls", Encoding(preset="ultrafast"), segment_seconds=1)
    hls.block_when_full = True
    other = RtspSink("front", "rtsp://127.0.0.1:9/none", Encoding(preset="ultrafast"), timeout=0.5)
    other.start()
    hls.start()
    for r in results:
        hls.submit(r)
        other.submit(r)  # fails (nothing listens) and retries the same result: draws it again each time
    hls.stop()
    other.stop(timeout=0.5)
    assert hls.frames == 3
    assert all((r.image == o).all() for r, o in zip(results, originals, strict=True))
