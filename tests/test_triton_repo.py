"""tools/triton_repo.py: a Triton model repository entry whose metadata streamseg reads back."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from streamseg.engines.metadata import build_model_info

TOOL = Path(__file__).resolve().parents[1] / "tools" / "triton_repo.py"


def _tool():  # noqa: ANN202 - the module
    spec = importlib.util.spec_from_file_location("triton_repo", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_repository_entry_carries_the_model_and_its_metadata(tmp_path: Path, dynamic_seg_model: Path) -> None:
    assert _tool().main([str(dynamic_seg_model), str(tmp_path), "--name", "yolov8n-seg", "--fp16"]) == 0
    folder = tmp_path / "yolov8n-seg"
    assert (folder / "1" / "model.onnx").read_bytes() == dynamic_seg_model.read_bytes()
    config = (folder / "config.pbtxt").read_text()
    assert 'name: "yolov8n-seg"' in config and "max_batch_size: 16" in config and "dynamic_batching" in config
    assert "KIND_GPU" in config and 'value: "FP16"' in config
    # what Triton hands to streamseg: the string_value, unescaped
    (raw,) = re.findall(r'string_value: ("(?:[^"\\]|\\.)*")', config)
    info = build_model_info(Path("yolov8n-seg"), json.loads(json.loads(raw)))
    assert info.names[0] == "person" and info.imgsz == (320, 320) and info.task == "segment"


def test_a_static_batch_model_gets_no_batcher(tmp_path: Path, fast_seg_model: Path) -> None:
    assert _tool().main([str(fast_seg_model), str(tmp_path), "--cpu"]) == 0
    config = (tmp_path / "yolov8n-seg-320" / "config.pbtxt").read_text()
    assert "max_batch_size: 0" in config and "dynamic_batching" not in config and "tensorrt" not in config
