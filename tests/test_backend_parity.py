"""`streamseg run` with `backend: torchscript` and `backend: triton` passes the parity checks onnxruntime passes,
on the real model (tests/backend_parity.py says which)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.backend_parity import check_same, check_ultralytics, run_cameras
from tests.conftest import SHARED
from tests.triton import MODEL_NAME, TritonServer, triton_server  # noqa: F401 - a fixture

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools


@pytest.fixture(scope="module")
def onnxruntime_frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    model = SHARED / "models" / "yolov8n-seg-320.onnx"
    if not model.is_file():
        pytest.skip(f"{model} is absent: set STREAMSEG_SHARED to the folder holding models/ and media/")
    frames = run_cameras(tmp_path_factory.mktemp("onnxruntime"), f"{{path: {model}}}", SHARED)
    check_ultralytics(frames)  # the baseline itself passes them
    return frames


def test_torchscript(tmp_path: Path, torchscript_model: Path, onnxruntime_frames: dict[str, list[dict]]) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: pip install 'streamseg[torch]' (tools/setup.sh installs the CPU wheel)")
    frames = run_cameras(tmp_path, f"{{path: {torchscript_model}, backend: torchscript, device: cpu}}", SHARED)
    check_ultralytics(frames)
    assert check_same(frames["bikes"], onnxruntime_frames["bikes"]) >= 80


def test_triton(
    tmp_path: Path,
    onnxruntime_frames: dict[str, list[dict]],
    triton_server: TritonServer,  # noqa: F811
) -> None:
    """The edge daemon has no model file: everything it needs comes from the server."""
    if importlib.util.find_spec("tritonclient") is None:
        pytest.skip("tritonclient is not installed: pip install 'streamseg[triton]'")
    model = f"{{path: {MODEL_NAME}, backend: triton, triton: {{url: '{triton_server.url}'}}}}"
    frames = run_cameras(tmp_path, model, SHARED)
    check_ultralytics(frames)
    assert check_same(frames["bikes"], onnxruntime_frames["bikes"]) >= 80
