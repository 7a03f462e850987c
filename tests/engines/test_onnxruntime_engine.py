"""OnnxRuntimeEngine and create_engine on the real model files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from streamseg.config.model import TensorRTConfig
from streamseg.engines import create_engine, read_model_info
from streamseg.engines.onnxruntime_engine import (
    OnnxRuntimeEngine,
    _session_error,
    provider_options,
    select_providers,
)
from streamseg.errors import ModelError


def test_reads_ultralytics_metadata(seg_model: Path) -> None:
    with create_engine(seg_model, threads=2) as engine:
        info = engine.info
        assert isinstance(engine, OnnxRuntimeEngine)
        assert engine.name == "onnxruntime[CPUExecutionProvider]"
        assert info.task == "segment" and info.imgsz == (320, 320) and info.stride == 32 and info.batch == 1
        assert len(info.names) == 80 and info.names[0] == "person" and info.names[5] == "bus"
        assert info.input_name == "images" and info.output_names == ("output0", "output1")
        assert info.output_shapes == ((1, 116, 2100), (1, 32, 80, 80))
        outputs = engine.infer(np.zeros((1, 3, 320, 320), np.float32))
        assert [o.shape for o in outputs] == [(1, 116, 2100), (1, 32, 80, 80)]


def test_float16_input_is_cast(det_model: Path) -> None:
    engine = create_engine(det_model, threads=1)
    half = engine.infer(np.full((1, 3, 320, 320), 0.5, np.float16))
    full = engine.infer(np.full((1, 3, 320, 320), 0.5, np.float32))
    np.testing.assert_array_equal(half[0], full[0])


@pytest.mark.parametrize("fixture", ["untrained_v8_640", "untrained_11_640"])
def test_untrained_graphs_report_640(fixture: str, request: pytest.FixtureRequest) -> None:
    info = read_model_info(request.getfixturevalue(fixture))
    assert info.imgsz == (640, 640) and info.task == "segment"
    assert info.output_shapes == ((1, 116, 8400), (1, 32, 160, 160))


def test_detection_model_info(det_model: Path) -> None:
    info = read_model_info(det_model)
    assert info.task == "detect" and info.output_shapes == ((1, 84, 2100),)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match="model file not found") as err:
        create_engine(path)
    assert str(path) in str(err.value)


def test_text_file_renamed_onnx(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(ModelError) as err:
        create_engine(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert "not an ONNX file" in message


def test_missing_convinteger_kernel_names_the_version_needed(tmp_path: Path) -> None:
    text = "Could not find an implementation for ConvInteger(10) node with name 'x'"
    message = str(_session_error(tmp_path / "m.onnx", RuntimeError(text)))
    assert "onnxruntime >= 1.23" in message and "m.onnx" in message


def test_unknown_backend(seg_model: Path) -> None:
    with pytest.raises(ModelError, match="unknown backend"):
        create_engine(seg_model, backend="openvino")


def test_requested_cuda_falls_back_to_cpu_with_a_warning(seg_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        engine = create_engine(seg_model, providers=["cuda"], threads=1)
    assert engine.name == "onnxruntime[CPUExecutionProvider]"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cuda" in warnings[0].getMessage()


def test_default_providers_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING):
        assert select_providers(None, available) == available
    assert not caplog.records


def test_provider_order_is_kept() -> None:
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers(["cuda", "tensorrt"], available) == [*available[1::-1], available[2]]
    with pytest.raises(ModelError, match="unknown provider"):
        select_providers(["npu"], available)


# --- GPU providers: their options, and IO binding -------------------------------------------------------------


def test_gpu_provider_options(tmp_path: Path) -> None:
    fp16 = TensorRTConfig(cache_dir=str(tmp_path))
    assert provider_options("CPUExecutionProvider", 1, fp16) == {}
    assert provider_options("CUDAExecutionProvider", 1, fp16) == {"device_id": "1"}
    cache = str(tmp_path / "onnxruntime")
    assert provider_options("TensorrtExecutionProvider", 1, fp16) == {
        "device_id": "1",
        "trt_fp16_enable": "True",
        "trt_int8_enable": "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": cache,
    }
    fp32 = provider_options("TensorrtExecutionProvider", 0, TensorRTConfig(precision="fp32", cache_dir=str(tmp_path)))
    assert fp32["trt_fp16_enable"] == "False" and fp32["device_id"] == "0"


def test_sessions_on_gpu_providers_get_their_options(
    tmp_path: Path, fast_seg_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: onnxruntime is told the GPU providers exist and the session's arguments are checked."""
    seen = {}
    real = ort.InferenceSession

    def session(path: str, sess_options: object, providers: list[str], provider_options: list[dict]) -> object:
        seen.update(providers=providers, provider_options=provider_options)
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(ort, "InferenceSession", session)
    cfg = TensorRTConfig(precision="fp32", cache_dir=str(tmp_path))
    create_engine(fast_seg_model, device="cuda:1", tensorrt=cfg).close()
    assert seen["providers"] == available
    trt, cuda, cpu = seen["provider_options"]
    assert trt["device_id"] == cuda["device_id"] == "1" and cpu == {}
    assert trt["trt_fp16_enable"] == "False" and trt["trt_engine_cache_path"] == str(tmp_path / "onnxruntime")


def test_io_binding_gives_the_same_outputs(dynamic_seg_model: Path) -> None:
    """IO binding (used on GPU providers) runs here on the CPU: same outputs, one input buffer per batch size."""
    bound = OnnxRuntimeEngine(dynamic_seg_model, providers=["cpu"], threads=2, io_binding=True)
    plain = OnnxRuntimeEngine(dynamic_seg_model, providers=["cpu"], threads=2)
    rng = np.random.default_rng(0)
    for batch in (1, 3, 1):
        x = rng.random((batch, 3, 320, 320), dtype=np.float32)
        for a, b in zip(bound.infer(x), plain.infer(x), strict=True):
            np.testing.assert_array_equal(a, b)
    assert sorted(bound._binding.inputs) == [(1, 3, 320, 320), (3, 3, 320, 320)]
