"""Shared pieces of the config schema."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationInfo


class Section(BaseModel):
    """Every config section rejects unknown keys, so a typo is an error, not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def base_dir(info: ValidationInfo) -> Path:
    """The config file's folder (relative paths resolve against it), passed in as validation context."""
    ctx = info.context or {}
    return Path(ctx.get("base_dir", "."))


def resolve_path(value: str | Path, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir(info) / path).resolve()


def existing_file(value: str | Path | None, info: ValidationInfo) -> Path | None:
    """An optional file setting: resolved against the config folder, and it must exist."""
    if value is None:
        return None
    path = resolve_path(value, info)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path
