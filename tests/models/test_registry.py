"""resolve_model: paths, model IDs through $STREAMSEG_MODELS, and the not-found message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamseg.errors import ModelError
from streamseg.models import resolve_model


@pytest.fixture
def models_dir(tmp_path: Path, seg_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "yolov8n-seg-320-int8.onnx").symlink_to(seg_model)
    monkeypatch.setenv("STREAMSEG_MODELS", os.pathsep.join([str(tmp_path / "empty"), str(folder)]))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return folder


def test_model_id_found_through_env(models_dir: Path, seg_model: Path) -> None:
    assert resolve_model("yolov8n-seg-320-int8") == seg_model.resolve()


def test_engine_file_found_for_an_id(models_dir: Path) -> None:
    (models_dir / "yolo11s-seg-640.engine").write_bytes(b"\0")
    assert resolve_model("yolo11s-seg-640").name == "yolo11s-seg-640.engine"


def test_existing_paths(tmp_path: Path, seg_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model(str(seg_model)) == seg_model.resolve()
    assert resolve_model(seg_model.name, base_dir=seg_model.parent) == seg_model.resolve()
    monkeypatch.chdir(seg_model.parent)
    assert resolve_model(f"./{seg_model.name}") == seg_model.resolve()


def test_unknown_id_message(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        resolve_model("yolov8n-seg-640")
    message = str(err.value)
    assert "\n" not in message
    assert "'yolov8n-seg-640'" in message
    assert str(models_dir) in message and str(tmp_path / "empty") in message
    assert str(tmp_path / "home" / ".cache" / "streamseg" / "models") in message
    assert "yolo export model=yolov8n-seg.pt format=onnx imgsz=640" in message


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found: .*missing.onnx"):
        resolve_model("missing.onnx", base_dir=tmp_path)
    with pytest.raises(ModelError, match="model file not found"):
        resolve_model("sub/dir/model")
