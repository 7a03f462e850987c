"""`outputs:` section: files a camera writes besides MQTT."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, ValidationInfo, field_validator

from streamseg.config.base import Section, resolve_path
from streamseg.sources.kinds import is_stream_url

if TYPE_CHECKING:
    from streamseg.config.app import AppConfig


class FileOutput(Section):
    path: Path = Field(description="Output file, relative to the config file; its folder is created.")

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_path(path, info)


_NOT_AN_INPUT = " Must not be a source, the config file, a model, the MQTT outbox or another output."


class VideoOutput(FileOutput):
    path: Path = Field(
        description="MP4 file, relative to the config file; its folder is created. Never overwritten: when it exists "
        "(an earlier run), the next free name is used: bikes-1.mp4, bikes-2.mp4, ... Fragmented MP4 (a fragment at "
        "least every 2 s), so a file cut off by a crash plays." + _NOT_AN_INPUT
    )
    crf: int = Field(23, ge=0, le=51, description="H.264 quality (lower is better and larger).")
    preset: str = Field(
        "superfast", description="libx264 preset: ultrafast .. veryslow (slower: smaller files, more CPU)."
    )


class JsonlOutput(FileOutput):
    path: Path = Field(
        description="JSON-lines file, relative to the config file; its folder is created. Appended to: a restart "
        "keeps earlier lines." + _NOT_AN_INPUT
    )


class OutputsConfig(Section):
    video: VideoOutput | None = Field(None, description="Annotated, re-encoded H.264 MP4.")
    jsonl: JsonlOutput | None = Field(None, description="Detections and events, one JSON object a line.")


def path_collisions(config: AppConfig, config_path: Path | None) -> list[tuple[tuple[str, ...], str]]:
    """(field location, problem) for each output path that is also an input, the outbox or another output.

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
    return problems
