"""H.264 encoding of annotated frames, shared by every output that shows video (video files, RTSP, HLS).

One place decides the codec (libx264, or NVIDIA's h264_nvenc when it opens, with a logged fallback), its
low-latency options, the output size and the frame timing (a 1/fps grid from the frames' own pts, with an
optional fps cap that skips frames).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import av
import cv2
import numpy as np

from streamseg.config.outputs import EncoderSettings
from streamseg.vocab import VideoEncoder

log = logging.getLogger(__name__)


def frame_rate(fps: float) -> Fraction:
    """fps as the exact rational a container wants: 25 -> 25, 29.97002997 -> 30000/1001."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


@cache
def nvenc_error() -> str | None:
    """Why NVENC cannot encode here (no such encoder in this FFmpeg, no NVIDIA GPU or driver), or None when it can.

    Tried once per process by opening a small h264_nvenc encoder: being listed in `av.codecs_available`
    only means FFmpeg was built with it.
    """
    if VideoEncoder.H264_NVENC not in av.codecs_available:
        return "this FFmpeg (PyAV) has no h264_nvenc encoder"
    try:
        ctx = av.CodecContext.create(VideoEncoder.H264_NVENC, "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 256, "yuv420p", Fraction(1, 25)
        ctx.open()
    except Exception as exc:  # av.error.*: no CUDA device, driver too old, all NVENC sessions taken ...
        return str(exc) or type(exc).__name__
    return None


def choose_codec(choice: VideoEncoder, target: str = "output") -> str:
    """The FFmpeg encoder name for `choice`: auto and h264_nvenc take NVENC when it opens, else libx264 (logged)."""
    if choice == VideoEncoder.LIBX264:
        return VideoEncoder.LIBX264
    error = nvenc_error()
    if error is None:
        log.info("%s: encoding with h264_nvenc (NVIDIA GPU)", target)
        return VideoEncoder.H264_NVENC
    if choice == VideoEncoder.H264_NVENC:
        log.warning("%s: h264_nvenc cannot encode here (%s): falling back to libx264 (CPU)", target, error)
    else:
        log.info("%s: encoding with libx264 (CPU; h264_nvenc: %s)", target, error)
    return VideoEncoder.LIBX264


def output_size(width: int, height: int, scale_to: int | None) -> tuple[int, int]:
    """The encoded size: the frame's (or `scale_to` wide, same aspect), both even as yuv420p needs."""
    if scale_to is None:
        return width & ~1, height & ~1
    return scale_to & ~1, max(2, round(height * scale_to / width)) & ~1


@dataclass(frozen=True, slots=True)
class Encoding:
    """What an output asks of the encoder: codec choice, rate control, size and fps cap."""

    encoder: VideoEncoder = VideoEncoder.AUTO
    preset: str = "ultrafast"  # libx264's (the streams' default; files use superfast)
    crf: int = 23
    bitrate: int | None = None  # kbit/s; None: constant quality (crf / NVENC's cq)
    width: int | None = None
    fps: float | None = None  # cap
    threads: int = 1  # libx264 threads: one core's worth, the other cores stay with inference
    low_latency: bool = True  # streams: a frame leaves the encoder as it comes in; files: smaller (~15 %) instead

    @classmethod
    def from_settings(cls, settings: EncoderSettings, *, low_latency: bool = True) -> Encoding:
        return cls(
            encoder=settings.encoder,
            preset=settings.preset,
            crf=settings.crf,
            bitrate=settings.bitrate,
            width=settings.width,
            fps=settings.fps,
            low_latency=low_latency,
        )

    def options(self, codec: str, keyint: int) -> dict[str, str]:
        """Codec options. Low latency: no B-frames, no lookahead (x264's tune=zerolatency, NVENC's tune=ll)."""
        if codec == VideoEncoder.H264_NVENC:  # FFmpeg's nvenc_h264.c options
            opts = (
                {"preset": "p1", "tune": "ll", "zerolatency": "1", "bf": "0", "delay": "0"}
                if self.low_latency
                else {"preset": "p4", "tune": "hq"}
            )
            opts["g"] = str(keyint)
            rate = {"rc": "cbr", "b": f"{self.bitrate}k"} if self.bitrate else {"rc": "vbr", "cq": str(self.crf)}
        else:
            opts = {"preset": self.preset, "threads": str(self.threads), "g": str(keyint)}
            opts |= {"tune": "zerolatency"} if self.low_latency else {}
            rate = (
                {"b": f"{self.bitrate}k", "maxrate": f"{self.bitrate}k", "bufsize": f"{2 * self.bitrate}k"}
                if self.bitrate
                else {"crf": str(self.crf)}
            )
        return opts | rate


class FrameEncoder:
    """BGR frames -> H.264 packets of one stream in one container (a new FrameEncoder per container).

    Timing: a frame's output pts is its own pts on a 1/rate grid, counted from the first frame, strictly
    increasing; so frames dropped on the way (a full queue, fps control) leave the timeline intact. With an
    fps cap below the camera's rate, a frame whose grid slot is taken is skipped (`wants` says so before
    the frame is drawn). A keyframe comes at least every `keyframe_seconds`.
    """

    def __init__(self, encoding: Encoding, codec: str, keyframe_seconds: float) -> None:
        self.encoding = encoding
        self.codec = codec
        self.keyframe_seconds = keyframe_seconds
        self.rate: Fraction | None = None
        self.capped = False  # the fps cap is below the camera's rate: extra frames are skipped
        self.frames = 0
        self._stream: av.VideoStream | None = None
        self._first_pts: float | None = None
        self._last = -1

    def open(self, container: av.container.OutputContainer, width: int, height: int, fps: float) -> None:
        """Add the stream for frames of `width` x `height` at the camera's `fps`."""
        cap = self.encoding.fps
        self.capped = cap is not None and cap < fps
        self.rate = frame_rate(cap if self.capped and cap is not None else fps)
        keyint = max(1, round(self.keyframe_seconds * self.rate))
        stream = container.add_stream(self.codec, rate=self.rate, options=self.encoding.options(self.codec, keyint))
        stream.width, stream.height = output_size(width, height, self.encoding.width)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate
        self._stream = stream
        # Open the codec now, so an encoder that cannot run (NVENC: no free session, a driver problem) fails
        # here, apart from a container that cannot write (which fails on the first packet).
        stream.codec_context.open()

    @property
    def stream(self) -> av.VideoStream:
        assert self._stream is not None, "open() first"
        return self._stream

    def wants(self, pts: float) -> bool:
        """Whether a frame at `pts` would be encoded (False: skipped by the fps cap); always True before open."""
        return self._stream is None or not self.capped or self._first_pts is None or self._slot(pts) > self._last

    def encode(self, image: np.ndarray, pts: float) -> list[av.Packet]:
        """Encode one BGR frame; [] when the fps cap skips it (or the encoder holds it back)."""
        stream = self.stream
        if not self.wants(pts):
            return []
        if self._first_pts is None:
            self._first_pts = pts
        frame = av.VideoFrame.from_ndarray(self._to_i420(image, stream.width, stream.height), format="yuv420p")
        frame.pts = self._last = max(self._slot(pts), self._last + 1)
        self.frames += 1
        return stream.encode(frame)

    def flush(self) -> list[av.Packet]:
        """The packets the encoder still holds (at the end of a container)."""
        return [] if self._stream is None else self._stream.encode()

    def seconds(self) -> float:
        """Seconds of video encoded so far (to the end of the last frame)."""
        return 0.0 if self.rate is None else (self._last + 1) / self.rate

    def _slot(self, pts: float) -> int:
        assert self._first_pts is not None and self.rate is not None
        position = (pts - self._first_pts) * self.rate
        # Capped: the slot a frame falls in (the first frame of each 1/rate interval is kept). Uncapped: the
        # nearest slot, which absorbs the timestamps' jitter.
        return math.floor(position + 1e-6) if self.capped else round(position)

    @staticmethod
    def _to_i420(image: np.ndarray, width: int, height: int) -> np.ndarray:
        # BGR -> I420 with OpenCV: 3x faster than swscale here, same BT.601 limited-range result.
        if (image.shape[0] & ~1, image.shape[1] & ~1) != (height, width):  # scaled output, or the camera changed
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(image[:height, :width], cv2.COLOR_BGR2YUV_I420)
