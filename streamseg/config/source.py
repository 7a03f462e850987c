"""`source:` section: where a camera's frames come from, and how a live camera is kept connected."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from streamseg.config.base import Section, resolve_path
from streamseg.sources.kinds import STREAM_SCHEMES, is_live, is_stream_url
from streamseg.vocab import RingPolicy


class ReconnectConfig(Section):
    initial: float = Field(1.0, gt=0, le=3600, description="Seconds to wait before the first reconnect attempt.")
    max: float = Field(30.0, gt=0, le=3600, description="Cap of the wait, which doubles after each failed attempt.")
    jitter: float = Field(
        0.2, ge=0, le=1, description="Random spread of each wait, as a fraction (0.2: +-20%), so cameras desync."
    )
    max_retries: int | None = Field(
        None, ge=0, description="Failed attempts in a row before the camera is `failed`; null: retry forever."
    )

    @model_validator(mode="after")
    def _order(self) -> ReconnectConfig:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max:g}) must be at least initial ({self.initial:g})")
        return self


class SourceConfig(Section):
    url: str = Field(
        description="A video file (relative to the config file), a V4L2 device such as /dev/video0, or a stream "
        "URL (rtsp://, http(s)://, HLS .m3u8). ${VAR} is replaced from the environment, e.g. for passwords.",
        min_length=1,
    )
    loop: bool = Field(False, description="Files only: start again at the end instead of ending the camera.")
    realtime: bool = Field(
        False,
        description="Files only: read at the file's own frame rate, as a camera delivers frames, instead of as fast "
        "as inference goes (to watch a file live; with `loop`, forever). Ignored for live sources.",
    )
    live: bool | None = Field(
        None,
        description="Whether the source is a live camera (reconnects, never waits for inference) or a recording "
        "(ends at its end, loses no frame). null: guessed from the URL: local files are recordings, stream URLs "
        "and devices are live. Set false for a video file served over http(s).",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra FFmpeg/PyAV options passed to av.open; they win over the ones streamseg sets.",
    )
    format: str | None = Field(
        None, description="Force the FFmpeg input format (demuxer), e.g. hls; null: guessed (v4l2 for /dev/video*)."
    )
    transport: Literal["tcp", "udp"] = Field(
        "tcp", description="rtsp:// only: RTP over the RTSP TCP connection (robust) or over UDP (less delay)."
    )
    timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds to wait for a connection (and, for files, for each read)."
    )
    stall_timeout: float = Field(
        10.0, gt=0, le=600, description="Live sources: no frame for this many seconds forces a reconnect."
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig,
        description="Live sources: retry with exponential backoff and jitter after a drop, a stall or an error.",
    )
    video_size: str | None = Field(
        None, pattern=r"^\d+x\d+$", description="V4L2 devices: capture size such as 1280x720."
    )
    framerate: float | None = Field(None, gt=0, le=1000, description="V4L2 devices: capture frame rate.")
    input_format: str | None = Field(
        None, description="V4L2 devices: pixel format asked of the camera, e.g. mjpeg or yuyv422."
    )
    hwaccel: Literal["none", "cuda"] = Field(
        "none",
        description="cuda: decode H.264/HEVC on the GPU (NVDEC: h264_cuvid, hevc_cuvid); falls back to software "
        "decoding with one warning when that decoder cannot open.",
    )
    buffer_slots: int = Field(
        4, ge=2, le=256, description="Preallocated frame slots between the decoder and inference."
    )
    on_full: Literal["auto", "block", "drop_oldest", "latest"] = Field(
        "auto",
        description="When inference is behind: block the decoder (nothing lost), drop the oldest waiting frame "
        "(latency bounded by buffer_slots), or latest: inference always takes the newest frame and the older "
        "waiting ones are dropped (lowest latency). auto: block for files, latest for live sources.",
    )

    @field_validator("url")
    @classmethod
    def _resolve_file(cls, url: str, info: ValidationInfo) -> str:
        if is_stream_url(url) or url.startswith("/dev/"):
            return url
        if "://" in url:
            # Say which schemes work instead of failing later inside FFmpeg; never echo the URL (password).
            scheme = url.split("://", 1)[0]
            raise ValueError(f"unsupported URL scheme {scheme!r}; use a file path or one of {STREAM_SCHEMES}")
        return str(resolve_path(url, info))

    @property
    def is_live(self) -> bool:
        return is_live(self.url, self.live)

    @property
    def policy(self) -> RingPolicy:
        if self.on_full != "auto":
            return RingPolicy(self.on_full)
        return RingPolicy.LATEST if self.is_live else RingPolicy.BLOCK
