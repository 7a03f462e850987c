"""Model files and decoders: where a model comes from (registry), how frames go in and detections come out."""

from __future__ import annotations

from streamseg.models.letterbox import Letterbox, LetterboxParams, letterbox
from streamseg.models.registry import resolve_model
from streamseg.models.yolo import YoloModel

__all__ = ["Letterbox", "LetterboxParams", "YoloModel", "letterbox", "resolve_model"]
