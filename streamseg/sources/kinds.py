"""What kind of source a URL is, and the av.open arguments that suit it (FFmpeg options per protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from streamseg.config.source import is_stream_url

Kind = Literal["file", "rtsp", "v4l2", "http", "stream"]


def source_kind(url: str) -> Kind:
    lower = url.lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lower.startswith(("http://", "https://")):
        return "http"  # progressive streams (MJPEG, MPEG-TS) and HLS playlists alike
    if url.startswith("/dev/video"):
        return "v4l2"
    if is_stream_url(url):
        return "stream"  # rtmp, udp, tcp, srt
    return "file"


@dataclass(frozen=True)
class OpenArgs:
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def _usec(seconds: float) -> str:
    return str(int(seconds * 1_000_000))


def open_args(
    url: str,
    *,
    timeout: float,
    transport: str = "tcp",
    format: str | None = None,
    video_size: str | None = None,
    framerate: float | None = None,
    input_format: str | None = None,
    live: bool | None = None,
    extra: dict[str, str] | None = None,
) -> OpenArgs:
    """FFmpeg options for `url`; `extra` (the user's own `options`) wins over every one set here.

    `live`: None guesses from the URL (see `source_kind`); a recording served over http is live=False.

    The socket timeouts make a dead peer an error inside FFmpeg; PyAV's own `timeout` (set by the
    caller) bounds every blocking open/read as well, whatever the protocol.
    """
    kind = source_kind(url)
    options: dict[str, str] = {}
    if kind == "rtsp":
        options["rtsp_transport"] = transport
        options["timeout"] = _usec(timeout)  # FFmpeg >= 5: socket I/O timeout in microseconds
    elif kind == "http":
        options["rw_timeout"] = _usec(timeout)  # microseconds; protocol-level read/write timeout
    elif kind == "v4l2":
        format = format or "v4l2"
        if video_size:
            options["video_size"] = video_size
        if framerate:
            options["framerate"] = f"{framerate:g}"
        if input_format:
            options["input_format"] = input_format
    if live is None:
        live = kind != "file"
    if live:
        # Hand frames on as they arrive: latency over completeness (it loses the tail of a recording, e.g. HLS).
        options["fflags"] = "nobuffer"
    options.update(extra or {})
    return OpenArgs(format=format, options=options)
