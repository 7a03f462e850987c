"""The common part of every annotated output: draw the results on the frame, encode it, mux it into a container."""

from __future__ import annotations

import contextlib
import logging
from abc import abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import av

from streamseg.config.zones import LineConfig, ZoneConfig
from streamseg.sinks.annotate import annotate, draw_overlays
from streamseg.sinks.base import FrameResult, Sink
from streamseg.sinks.encoder import Encoding, FrameEncoder, choose_codec
from streamseg.timing import StageTimes
from streamseg.vocab import VideoEncoder

log = logging.getLogger(__name__)


class AnnotatedSink(Sink):
    """Draws masks, boxes, labels, zones and lines on each frame and encodes it as H.264 into a container.

    A subclass says where the container goes (`_open_container`); this class opens it on the first frame
    (so its size and rate are the camera's), encodes on the sink's own thread, and on a failed write
    abandons the container, so the retry (see Sink) starts a fresh one. Frames the fps cap skips are not
    drawn at all.
    """

    needs_image: ClassVar[bool] = True
    keyframe_seconds: ClassVar[float] = 2.0

    def __init__(
        self,
        camera: str,
        encoding: Encoding,
        *,
        queue_size: int,
        block_when_full: bool = False,
        zones: Mapping[str, ZoneConfig] | None = None,
        lines: Mapping[str, LineConfig] | None = None,
    ) -> None:
        super().__init__(camera, queue_size=queue_size, block_when_full=block_when_full)
        self.encoding = encoding
        self.zones, self.lines = zones or {}, lines or {}
        self.fps: float | None = None  # the output's frame grid; None: the camera's rate, from each result
        self.frames = 0  # frames encoded, over all containers
        self.codec: str | None = None  # chosen on the first frame (the choice is logged once)
        self.times = StageTimes()  # draw / encode / mux, per frame (bench)
        self._container: av.container.OutputContainer | None = None
        self._encoder: FrameEncoder | None = None

    # -- for subclasses ----------------------------------------------------------------------------
    @abstractmethod
    def _open_container(self, result: FrameResult) -> av.container.OutputContainer:
        """A new container for the stream that starts with `result` (on the sink's thread)."""

    def _mux(self, packets: list[av.Packet]) -> None:
        assert self._container is not None
        self._container.mux(packets)

    def _written(self, result: FrameResult) -> None:  # noqa: B027 - optional hook
        """After each frame that went into the container (segmenting, bookkeeping)."""

    # -- Sink --------------------------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        if result.image is None:
            raise ValueError(f"result has no image (the pipeline must copy frames for a {self.kind} sink)")
        if self._encoder is not None and not self._encoder.wants(result.pts):
            return  # the fps cap skips it: not drawn, not encoded, not a drop
        with self.times("draw"):
            # annotate() draws on a copy: the frame is shared with the camera's other sinks (each on its own
            # thread), and a failed write hands the same result again.
            image = annotate(result.image, result.detections)
            if self.zones or self.lines:
                image = draw_overlays(image, self.zones, self.lines)
        try:
            if self._encoder is None:
                self._start(result, image.shape[1], image.shape[0])
            assert self._encoder is not None
            with self.times("encode"):
                packets = self._encoder.encode(image, result.pts)
            with self.times("mux"):
                self._mux(packets)
        except Exception:
            self._abandon()  # unusable now; the retry starts a new container (what was written so far plays)
            raise
        self.frames += 1
        self._written(result)

    def close(self) -> None:
        self._close_container()

    # -- helpers -----------------------------------------------------------------------------------
    def _start(self, result: FrameResult, width: int, height: int) -> None:
        """A new container and encoder for the stream that starts with `result`.

        NVENC that passed the start-up probe can still refuse to open later (every encoder session taken:
        consumer drivers allow a few): then this output goes on with libx264, with a warning.
        """
        target = f"camera {self.camera!r}: {self.target}"
        self.codec = self.codec or choose_codec(self.encoding.encoder, target)
        while True:
            self._container = self._open_container(result)
            self._encoder = FrameEncoder(self.encoding, self.codec, self.keyframe_seconds)
            try:
                self._encoder.open(self._container, width, height, self.fps or result.fps)
                return
            except Exception as exc:
                if self.codec == VideoEncoder.LIBX264:
                    raise
                log.warning("%s: %s would not open (%s): falling back to libx264 (CPU)", target, self.codec, exc)
                self.codec = VideoEncoder.LIBX264
                self._abandon()

    def _close_container(self) -> None:
        """Flush the frames the encoder still holds and close the container (end of stream, end of a segment)."""
        container, encoder = self._container, self._encoder
        if container is None:
            return
        try:
            if encoder is not None:
                self._mux(encoder.flush())
        finally:
            self._container, self._encoder = None, None
            container.close()

    def _abandon(self) -> None:
        """After a failed write: close what can be closed, without flushing (the output is broken)."""
        container = self._container
        self._container, self._encoder = None, None
        if container is not None:
            with contextlib.suppress(Exception):  # the disk or server that failed the write may fail the close
                container.close()
