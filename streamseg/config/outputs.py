"""`outputs:` section: what a camera writes besides MQTT: files, and annotated streams for people to watch."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, ValidationInfo, field_validator, model_validator

from streamseg.config.base import Section, resolve_path
from streamseg.sources.kinds import is_stream_url
from streamseg.sources.url import redact_url
from streamseg.vocab import RtspTransport, VideoEncoder

if TYPE_CHECKING:
    from streamseg.config.app import AppConfig


class FileOutput(Section):
    path: Path = Field(description="Output file, relative to the config file; its folder is created.")

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_path(path, info)


_NOT_AN_INPUT = " Must not be a source, the config file, a model, the MQTT outbox or another output."

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZES = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_KEEP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.I)


def parse_keep(value: str) -> tuple[float | None, int | None]:
    """A retention as (seconds, None) for a duration (`24h`, `30m`, `7d`) or (None, bytes) for a size (`2GB`)."""
    match = _KEEP.match(value)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit not in _UNITS and unit not in _SIZES):
        raise ValueError(f"{value!r} is neither a duration (30m, 24h, 7d) nor a size (500MB, 2GB)")
    number = float(match.group(1))
    if number <= 0:
        raise ValueError(f"{value!r} must be more than 0")
    if unit in _UNITS:
        return number * _UNITS[unit], None
    return None, int(number * _SIZES[unit])


class EncoderSettings(Section):
    """How an annotated output is encoded (shared by video, rtsp and hls)."""

    encoder: VideoEncoder = Field(
        VideoEncoder.AUTO,
        description="H.264 encoder: auto (NVIDIA NVENC when a GPU encoder opens, else libx264, logged once), "
        "libx264 (CPU) or h264_nvenc (NVIDIA; falls back to libx264 with a warning when it cannot open).",
    )
    preset: str = Field(
        "ultrafast",
        description="libx264 preset: ultrafast .. veryslow (slower: smaller output, more CPU; veryfast takes "
        "about 2.5x the CPU of ultrafast for about half the bit rate); streams are tuned for zero latency. NVENC "
        "uses its own presets (streams: its fastest low-latency one).",
    )
    bitrate: int | None = Field(
        None, gt=0, le=200_000, description="Target bit rate in kbit/s; null: constant quality (`crf`)."
    )
    crf: int = Field(23, ge=0, le=51, description="H.264 quality when no bitrate is set (lower is better and larger).")
    width: int | None = Field(
        None,
        ge=16,
        le=7680,
        description="Scale the output to this width (the height follows the aspect ratio); null: the camera's size.",
    )
    fps: float | None = Field(
        None,
        gt=0,
        le=240,
        description="Encode at most this many frames a second (frames above it are skipped, not counted as "
        "dropped); null: every frame the camera processes.",
    )


class VideoOutput(EncoderSettings):
    path: Path = Field(
        description="MP4 file, relative to the config file; its folder is created. Never overwritten: when it exists "
        "(an earlier run), the next free name is used: bikes-1.mp4, bikes-2.mp4, ... Fragmented MP4 (a fragment at "
        "least every 2 s), so a file cut off by a crash plays. With `segment_seconds`, one file per segment named "
        "after the time it starts: bikes-20260501-120000.mp4." + _NOT_AN_INPUT
    )
    preset: str = Field(
        "superfast", description="libx264 preset: ultrafast .. veryslow (slower: smaller files, more CPU)."
    )
    segment_seconds: float | None = Field(
        None,
        ge=2,
        le=86400,
        description="Start a new file after this many seconds of video (each file plays on its own); null: one file.",
    )
    keep: str | None = Field(
        None,
        description="With `segment_seconds`: delete the oldest segments of this output (also those of earlier "
        "runs) once they are older than a duration (30m, 24h, 7d) or together larger than a size (500MB, 2GB); "
        "null: keep all.",
    )

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_path(path, info)

    @field_validator("keep")
    @classmethod
    def _keep(cls, keep: str | None) -> str | None:
        if keep is not None:
            parse_keep(keep)
        return keep

    @model_validator(mode="after")
    def _keep_needs_segments(self) -> VideoOutput:
        if self.keep is not None and self.segment_seconds is None:
            raise ValueError("keep needs segment_seconds: only whole segments are deleted")
        return self


def segment_pattern(path: Path) -> re.Pattern[str]:
    """The file names of a segmented video output `path` (any run's): `stem-YYYYmmdd-HHMMSS[-N].suffix`.

    What its retention may delete, so nothing else in the folder may match it (see path_collisions).
    """
    stem, suffix = re.escape(path.stem), re.escape(path.suffix)
    return re.compile(rf"^{stem}-\d{{8}}-\d{{6}}(-\d+)?{suffix}$")


class StreamSettings(EncoderSettings):
    """An annotated stream for people to watch: it drops frames rather than make anything wait."""

    queue_size: int = Field(
        8, ge=1, le=1000, description="Frames waiting to be encoded; more are dropped (and counted), never waited for."
    )


class RtspOutput(StreamSettings):
    url: str = Field(
        description="Where to publish the annotated stream, on an RTSP server that accepts publishers "
        "(MediaMTX, go2rtc): rtsp://host:8554/front. Viewers then play it from that server. When the server is "
        "away, frames for it are dropped (counted) and the connection retried with backoff; detection and MQTT "
        "go on."
    )
    transport: RtspTransport = Field(RtspTransport.TCP, description="tcp (through firewalls, no loss) or udp.")
    timeout: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Seconds the connection, a reply of the server or the sending of one frame may take before "
        "it counts as failed (and the connection is retried).",
    )
    retry_max: float = Field(
        30.0, gt=0, le=3600, description="Cap of the wait between reconnect attempts, which doubles from 0.5 s."
    )

    @field_validator("url")
    @classmethod
    def _rtsp(cls, url: str) -> str:
        if not url.lower().startswith(("rtsp://", "rtsps://")):
            raise ValueError(f"{redact_url(url)!r} is not an rtsp:// or rtsps:// URL")
        return url


class HlsOutput(StreamSettings):
    dir: Path = Field(
        description="Folder for index.m3u8 and its segments (segment-<n>.ts), relative to the config file; "
        "created. Serve it with any web server. The output's own old segments are deleted (also those left "
        "by an earlier run); nothing else in the folder is touched, and nothing else may be in it (validate "
        "checks)." + _NOT_AN_INPUT
    )
    segment_seconds: float = Field(2.0, ge=0.5, le=60, description="Target length of a segment, in seconds.")
    list_size: int = Field(
        5, ge=1, le=1000, description="Segments listed in the playlist; older ones are deleted from the folder."
    )

    @field_validator("dir")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_path(path, info)


class JsonlOutput(FileOutput):
    path: Path = Field(
        description="JSON-lines file, relative to the config file; its folder is created. Appended to: a restart "
        "keeps earlier lines." + _NOT_AN_INPUT
    )


class OutputsConfig(Section):
    video: VideoOutput | None = Field(None, description="Annotated, re-encoded H.264 MP4 (optionally segmented).")
    jsonl: JsonlOutput | None = Field(None, description="Detections and events, one JSON object a line.")
    rtsp: RtspOutput | None = Field(None, description="The annotated stream, pushed to an RTSP server.")
    hls: HlsOutput | None = Field(None, description="The annotated stream as a live HLS playlist in a folder.")


def path_collisions(config: AppConfig, config_path: Path | None) -> list[tuple[tuple[str, ...], str]]:
    """(field location, problem) for each output path that is also an input, the outbox or another output.

    Also: nothing else inside an HLS folder, nothing else named like a segmented video's segments (both
    delete their old files), and no two RTSP outputs publishing to one URL.

    Paths are compared after resolving symlinks and `..`, so two spellings of one file are one file: an
    output must never write over (or append to) a file the daemon reads or writes for something else.
    """
    taken: dict[str, str] = {}  # real path -> what it is, as the rest of a problem line
    if config_path is not None:
        taken[os.path.realpath(config_path)] = "is the config file"
    mqtt = config.mqtt
    if mqtt is not None and mqtt.outbox.enabled:
        from streamseg.sinks.outbox import default_path

        outbox = mqtt.outbox.path or default_path(mqtt.topic_prefix)
        taken[os.path.realpath(outbox)] = "is the MQTT outbox (mqtt.outbox.path)"
        for suffix in ("-wal", "-shm", ".lock"):  # SQLite's companion files and the outbox's lock
            taken[os.path.realpath(f"{outbox}{suffix}")] = "is a file of the MQTT outbox (mqtt.outbox.path)"
    base = config_path.parent if config_path is not None else Path.cwd()
    for name, camera in config.cameras.items():
        url = camera.source.url
        if not is_stream_url(url) and not url.startswith("/dev/"):
            taken.setdefault(os.path.realpath(url), f"is the source of camera {name!r} (cameras.{name}.source.url)")
        model = Path(camera.model.path).expanduser()
        model = model if model.is_absolute() else base / model
        if model.is_file():
            taken.setdefault(os.path.realpath(model), f"is the model of camera {name!r} (cameras.{name}.model.path)")
    problems = []
    for name, camera in config.cameras.items():
        for kind in ("video", "jsonl"):
            output = getattr(camera.outputs, kind)
            if output is None:
                continue
            real = os.path.realpath(output.path)
            if real in taken:
                problem = f"{output.path} {taken[real]}: an output must not write to it"
                problems.append((("cameras", name, "outputs", kind, "path"), problem))
            else:
                taken[real] = f"is also the output cameras.{name}.outputs.{kind}.path"
    # Outputs that delete their old files: nothing else may live where they delete.
    hls_dirs: dict[str, str] = {}  # real folder -> where it is set
    for name, camera in config.cameras.items():
        video, hls = camera.outputs.video, camera.outputs.hls
        if video is not None and video.segment_seconds is not None:
            folder, pattern = os.path.realpath(video.path.parent), segment_pattern(video.path)
            for real, what in taken.items():
                if os.path.dirname(real) == folder and pattern.match(os.path.basename(real)):
                    problem = f"{real} {what}, and its name is one of this output's segments (which retention deletes)"
                    problems.append((("cameras", name, "outputs", "video", "path"), problem))
        if hls is None:
            continue
        where = ("cameras", name, "outputs", "hls", "dir")
        folder = os.path.realpath(hls.dir)
        inside = [(real, what) for real, what in taken.items() if _within(real, folder)]
        for real, what in inside:
            problems.append((where, f"{hls.dir} holds {real}, which {what}: an HLS folder must hold nothing else"))
        other = next((d for d in hls_dirs if _within(d, folder) or _within(folder, d)), None)
        if other is not None:
            problems.append((where, f"{hls.dir} overlaps {hls_dirs[other]}: each HLS output needs its own folder"))
        elif not inside:
            hls_dirs[folder] = f"cameras.{name}.outputs.hls.dir"
    # One RTSP path takes one publisher: a second would knock the first off (or be refused) forever.
    published: dict[str, str] = {}
    for name, camera in config.cameras.items():
        rtsp = camera.outputs.rtsp
        if rtsp is None:
            continue
        if rtsp.url in published:
            problem = f"{redact_url(rtsp.url)} is also the output {published[rtsp.url]}: one stream per RTSP path"
            problems.append((("cameras", name, "outputs", "rtsp", "url"), problem))
        else:
            published[rtsp.url] = f"cameras.{name}.outputs.rtsp.url"
    return problems


def _within(path: str, folder: str) -> bool:
    """Whether the real path `path` is `folder` or inside it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
