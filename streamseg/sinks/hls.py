"""The annotated stream of one camera as a live HLS playlist: index.m3u8 and a bounded set of segments."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import ClassVar

import av

from streamseg.config.camera import CameraConfig
from streamseg.sinks.annotated import AnnotatedSink
from streamseg.sinks.base import FrameResult
from streamseg.sinks.encoder import Encoding

log = logging.getLogger(__name__)

PLAYLIST = "index.m3u8"
SEGMENT = re.compile(r"^segment-\d+\.ts(\.tmp)?$")  # this output's segments, as FFmpeg names them below


class HlsSink(AnnotatedSink):
    """Writes `dir/index.m3u8` and MPEG-TS segments of about `segment_seconds` with FFmpeg's HLS muxer.

    The playlist lists the newest `list_size` segments; FFmpeg deletes older ones as it goes, and
    segments left by an earlier run are deleted at start, so the folder stays bounded. Segments are
    numbered from the Unix time the playlist started, so a player never sees a name reused. The playlist
    and each segment are written to a temporary name and renamed, so a web server never serves half a file.
    A keyframe starts every segment, so each one decodes on its own. Like the RTSP output, a viewer
    stream: a full queue drops frames (counted), never waited for.
    """

    kind: ClassVar[str] = "hls"
    drain_timeout: float = 2.0

    def __init__(
        self,
        camera: str,
        folder: Path,
        encoding: Encoding | None = None,
        *,
        segment_seconds: float = 2.0,
        list_size: int = 5,
        queue_size: int = 8,
        **kwargs,
    ) -> None:
        super().__init__(camera, encoding or Encoding(), queue_size=queue_size, **kwargs)
        self.folder = Path(folder)
        self.segment_seconds = segment_seconds
        self.list_size = list_size
        self.keyframe_seconds = segment_seconds  # FFmpeg cuts a segment at the first keyframe past hls_time

    @property
    def playlist(self) -> Path:
        return self.folder / PLAYLIST

    @property
    def target(self) -> str:
        return f"hls output {self.playlist}"

    def outputs(self) -> list[Path]:
        return [self.playlist] if self.frames else []

    @classmethod
    def from_config(cls, camera: str, cfg: CameraConfig) -> HlsSink:
        hls = cfg.outputs.hls
        assert hls is not None
        return cls(
            camera,
            hls.dir,
            Encoding.from_settings(hls),
            segment_seconds=hls.segment_seconds,
            list_size=hls.list_size,
            queue_size=hls.queue_size,
            zones=cfg.zones,
            lines=cfg.lines,
        )

    def segments(self) -> list[Path]:
        """This output's segment files on disk, by name."""
        with contextlib.suppress(OSError):
            return sorted(self.folder / e.name for e in os.scandir(self.folder) if SEGMENT.match(e.name))
        return []

    def open(self) -> None:
        # On the caller's thread, so a folder that cannot be created shows at start-up.
        self.folder.mkdir(parents=True, exist_ok=True)
        stale = self.segments()
        for path in stale:  # an earlier run's: no playlist lists them any more
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if stale:
            log.info("camera %r: deleted %d old HLS segment(s) in %s", self.camera, len(stale), self.folder)

    def _open_container(self, result: FrameResult) -> av.container.OutputContainer:
        self.folder.mkdir(parents=True, exist_ok=True)
        options = {
            "hls_time": f"{self.segment_seconds:g}",
            "hls_list_size": str(self.list_size),
            "hls_flags": "delete_segments+independent_segments+temp_file",
            "hls_start_number_source": "epoch",
            "hls_segment_filename": str(self.folder / "segment-%d.ts"),
        }
        return av.open(str(self.playlist), mode="w", format="hls", options=options)
