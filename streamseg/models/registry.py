"""Resolve a model spec (a path or a model ID such as yolov8n-seg-640) to a file on disk."""

from __future__ import annotations

import os
from pathlib import Path

from streamseg.errors import ModelError

MODEL_SUFFIXES = (".onnx", ".engine", ".plan", ".torchscript")
ENV_VAR = "STREAMSEG_MODELS"


def model_dirs() -> list[Path]:
    """Folders searched for model IDs: $STREAMSEG_MODELS (os.pathsep-separated), then the user cache."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    dirs.append(Path("~/.cache/streamseg/models").expanduser())
    return dirs


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or Path(spec).suffix.lower() in MODEL_SUFFIXES


def resolve_model(spec: str, base_dir: Path | None = None) -> Path:
    """A path (absolute, or relative to base_dir, then the cwd) or a model ID looked up in model_dirs()."""
    spec = str(spec).strip()
    path = Path(spec).expanduser()
    candidates = [path] if path.is_absolute() else [*([Path(base_dir) / path] if base_dir else []), path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    if _looks_like_path(spec):
        raise ModelError(f"model file not found: {candidates[0]}")

    dirs = model_dirs()
    for folder in dirs:
        for suffix in MODEL_SUFFIXES:
            candidate = folder / f"{spec}{suffix}"
            if candidate.is_file():
                return candidate.resolve()
    searched = ", ".join(str(d) for d in dirs)
    raise ModelError(
        f"model {spec!r} not found as {spec}.onnx/.engine/.plan/.torchscript in: {searched} "
        f"(${ENV_VAR}, then the cache); "
        f"export it with Ultralytics, e.g. `yolo export model=yolov8n-seg.pt format=onnx imgsz=640`, "
        f"rename it to {spec}.onnx and put it in one of those folders"
    )
