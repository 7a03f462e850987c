"""What kind of source a URL is, and the av.open arguments that suit it (FFmpeg options per protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamseg.vocab import SourceKind

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


def is_stream_url(url: str) -> bool:
    return url.lower().startswith(STREAM_SCHEMES)


def source_kind(url: str) -> SourceKind:
    lower = url.lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return SourceKind.RTSP
    if lower.startswith(("http://", "https://")):
        return SourceKind.HTTP  # progressive streams (MJPEG, MPEG-TS) and HLS playlists alike
    if url.startswith("/dev/"):
        return SourceKind.V4L2  # a capture device
    if is_stream_url(url):
        return SourceKind.STREAM  # rtmp, udp, tcp, srt
    return SourceKind.FILE


def is_live(url: str, live: bool | None = None) -> bool:
    """The one place that decides whether a source is live (reconnects, never waits for inference, drops the
    oldest frame when behind) or a recording (ends at its end, loses nothing). `live`: the config's setting;
    None guesses from the URL: files are recordings, streams and devices are live."""
    return source_kind(url) != SourceKind.FILE if live is None else live


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
    if kind == SourceKind.RTSP:
        options["rtsp_transport"] = transport
        options["timeout"] = _usec(timeout)  # FFmpeg >= 5: socket I/O timeout in microseconds
    elif kind == SourceKind.HTTP:
        options["rw_timeout"] = _usec(timeout)  # microseconds; protocol-level read/write timeout
    elif kind == SourceKind.V4L2:
        format = format or "v4l2"
        if video_size:
            options["video_size"] = video_size
        if framerate:
            options["framerate"] = f"{framerate:g}"
        if input_format:
            options["input_format"] = input_format
    if is_live(url, live):
        # Hand frames on as they arrive: latency over completeness (it loses the tail of a recording, e.g. HLS).
        options["fflags"] = "nobuffer"
    options.update(extra or {})
    return OpenArgs(format=format, options=options)
