"""Resolve a model spec (a path or a model ID such as yolov8n-seg-640) to a file on disk.

A model ID is looked up, in order, in the folders of $STREAMSEG_MODELS, in the model cache
($STREAMSEG_CACHE/models, else ~/.cache/streamseg/models) and, when a mirror is configured (`model.mirror` or
$STREAMSEG_MODEL_URL), downloaded from `<mirror>/<ID>.onnx` into the cache (streamseg/models/download.py).
Nothing is looked up or downloaded at import time: only when a model is opened.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from streamseg.errors import ModelError

MODEL_SUFFIXES = (".onnx", ".engine", ".plan", ".torchscript")
ENV_VAR = "STREAMSEG_MODELS"
URL_ENV = "STREAMSEG_MODEL_URL"
CACHE_ENV = "STREAMSEG_CACHE"  # shared with the TensorRT engine cache; models go in its models/ folder
# The seeds' pretrained COCO instance-segmentation IDs; a mirror may serve others under the same naming.
SEED_MODEL_IDS = tuple(
    [f"yolov8{size}-seg-{px}" for px in (640, 1280) for size in "nsmlx"] + [f"yolo11{size}-seg-640" for size in "nsmlx"]
)
_ULTRALYTICS_ID = re.compile(r"^(yolov8|yolo11)([nsmlx])-(seg|pose)-(\d+)$")


def cache_dir() -> Path:
    """Where downloaded models are kept: $STREAMSEG_CACHE/models, else ~/.cache/streamseg/models."""
    root = os.environ.get(CACHE_ENV, "").strip()
    return Path(root).expanduser() / "models" if root else Path("~/.cache/streamseg/models").expanduser()


def model_dirs() -> list[Path]:
    """Folders searched for model IDs: $STREAMSEG_MODELS (os.pathsep-separated), then the model cache."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    dirs.append(cache_dir())
    return dirs


def mirror_url(mirror: str | None = None) -> str | None:
    """The mirror model IDs are downloaded from: the config's `model.mirror`, else $STREAMSEG_MODEL_URL."""
    return (mirror or "").strip() or os.environ.get(URL_ENV, "").strip() or None


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or Path(spec).suffix.lower() in MODEL_SUFFIXES


def find_model(spec: str, base_dir: Path | None = None) -> Path | None:
    """The file for `spec` already on disk, or None for a model ID found nowhere (a path must exist)."""
    spec = str(spec).strip()
    path = Path(spec).expanduser()
    candidates = [path] if path.is_absolute() else [*([Path(base_dir) / path] if base_dir else []), path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    if _looks_like_path(spec):
        raise ModelError(f"model file not found: {candidates[0]}")
    for folder in model_dirs():
        for suffix in MODEL_SUFFIXES:
            candidate = folder / f"{spec}{suffix}"
            if candidate.is_file():
                return candidate.resolve()
    return None


def resolve_model(
    spec: str,
    base_dir: Path | None = None,
    *,
    mirror: str | None = None,
    sha256: str | None = None,
    download: bool = True,
) -> Path:
    """A path (absolute, or relative to base_dir, then the cwd) or a model ID: model_dirs(), then the mirror.

    download=False (`streamseg validate`, which never connects): an ID that only the mirror can provide
    resolves to where it will be downloaded, without downloading it.
    """
    spec = str(spec).strip()
    found = find_model(spec, base_dir)
    if found is not None:
        return found
    url = mirror_url(mirror)
    if url is not None:
        if not download:
            return cache_dir() / f"{spec}.onnx"
        from streamseg.models.download import download_model

        return download_model(spec, url, cache_dir(), sha256=sha256)
    searched = ", ".join(str(d) for d in model_dirs())
    raise ModelError(
        f"model {spec!r} not found as {spec}.onnx/.engine/.plan/.torchscript in: {searched} "
        f"(${ENV_VAR}, then the cache); "
        f"set model.mirror or ${URL_ENV} to a mirror serving {spec}.onnx to download it, or "
        f"export it with Ultralytics, e.g. `{_export_command(spec)}`, "
        f"rename it to {spec}.onnx and put it in one of those folders"
    )


def _export_command(spec: str) -> str:
    """The Ultralytics export that makes `spec` (yolo11s-seg-640 -> yolo11s-seg.pt at imgsz 640)."""
    match = _ULTRALYTICS_ID.match(spec)
    if match is None:
        return "yolo export model=yolov8n-seg.pt format=onnx imgsz=640"
    family, size, task, px = match.groups()
    return f"yolo export model={family}{size}-{task}.pt format=onnx imgsz={px}"
