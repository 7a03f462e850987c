"""`outputs:` section: files a camera writes besides MQTT."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from streamseg.config.base import Section, resolve_path


class FileOutput(Section):
    path: Path = Field(description="Output file, relative to the config file; its folder is created.")

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_path(path, info)


class VideoOutput(FileOutput):
    crf: int = Field(23, ge=0, le=51, description="H.264 quality (lower is better and larger).")
    preset: str = Field(
        "superfast", description="libx264 preset: ultrafast .. veryslow (slower: smaller files, more CPU)."
    )


class JsonlOutput(FileOutput):
    pass


class OutputsConfig(Section):
    video: VideoOutput | None = Field(None, description="Annotated, re-encoded H.264 MP4.")
    jsonl: JsonlOutput | None = Field(None, description="Detections and events, one JSON object a line.")
