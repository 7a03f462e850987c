"""Shared fixtures: where the real model and media live (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STREAMSEG_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(autouse=True, scope="session")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Daemons started by the tests (in process or not) keep their default MQTT outbox out of ~/.local/state."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    os.environ.pop("STATE_DIRECTORY", None)


def _shared_file(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent: set STREAMSEG_SHARED to the folder holding models/ and media/")
    return path


@pytest.fixture(scope="session")
def seg_model() -> Path:
    """The real pretrained YOLOv8n-seg (COCO, int8, 320 px)."""
    return _shared_file("models", "yolov8n-seg-320-int8.onnx")


@pytest.fixture(scope="session")
def det_model() -> Path:
    """The real detection-only YOLOv8n twin."""
    return _shared_file("models", "yolov8n-320-int8.onnx")


@pytest.fixture(scope="session")
def untrained_v8_640() -> Path:
    return _shared_file("models", "yolov8n-seg-640-untrained.onnx")


@pytest.fixture(scope="session")
def untrained_11_640() -> Path:
    return _shared_file("models", "yolo11n-seg-640-untrained.onnx")


@pytest.fixture(scope="session")
def bikes_mp4() -> Path:
    return _shared_file("media", "bikes.mp4")


@pytest.fixture(scope="session")
def carphone_mp4() -> Path:
    return _shared_file("media", "carphone_pristine.mp4")


@pytest.fixture(scope="session")
def bus_jpg() -> Path:
    return _shared_file("media", "bus.jpg")


@pytest.fixture(scope="session")
def zidane_jpg() -> Path:
    return _shared_file("media", "zidane.jpg")


@pytest.fixture(scope="session")
def fast_seg_model() -> Path:
    """The real YOLOv8n-seg dequantized to fp32 (~5x the int8 file's speed here)."""
    return _shared_file("models", "yolov8n-seg-320.onnx")


@pytest.fixture(scope="session")
def torchscript_model() -> Path:
    """The same real weights in Ultralytics' TorchScript export (metadata in extra/config.txt)."""
    return _shared_file("models", "yolov8n-seg-320.torchscript")


@pytest.fixture(scope="session")
def dynamic_seg_model() -> Path:
    """The fast real model with a dynamic batch axis, for batching."""
    return _shared_file("models", "yolov8n-seg-320-dynamic.onnx")
