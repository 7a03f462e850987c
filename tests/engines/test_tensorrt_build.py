"""Building TensorRT engines from the real ONNX files, and the engine cache, through fakes of TensorRT 10 and pycuda.

The fake builder records the options it was given and "builds" an engine that runs the ONNX file with onnxruntime,
so an engine built, cached, reopened and run here must give onnxruntime's outputs on the real model.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg.config.model import TensorRTConfig
from streamseg.engines import create_engine, read_model_info
from streamseg.engines.tensorrt_build import build_engine, file_sha256
from streamseg.engines.tensorrt_engine import TensorRTEngine
from streamseg.errors import ModelError
from streamseg.models import YoloModel
from tests.engines.fake_tensorrt import built_spec


def test_cache_file_names_what_the_engine_depends_on(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    trt, _ = fake_gpu()
    path = build_engine(fast_seg_model, cache_dir=tmp_path)
    sha = file_sha256(fast_seg_model)
    assert path == tmp_path / f"yolov8n-seg-320.{sha[:16]}.fp16.static1.trt10_3_0.sm87.engine"
    assert build_engine(fast_seg_model, cache_dir=tmp_path) == path
    assert len(trt.builds) == 1, "the second call takes the cached engine"

    assert build_engine(fast_seg_model, precision="fp32", cache_dir=tmp_path).name.count(".fp32.") == 1
    assert len(trt.builds) == 2, "another precision is another engine"


@pytest.mark.parametrize(("cc", "version", "part"), [((7, 2), "10.3.0", ".sm72."), ((8, 7), "10.7.0", ".trt10_7_0.")])
def test_another_gpu_or_tensorrt_builds_another_engine(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, cc: tuple[int, int], version: str, part: str
) -> None:
    fake_gpu()
    first = build_engine(fast_seg_model, cache_dir=tmp_path)
    trt, _ = fake_gpu(cc=cc, version=version)  # the same cache folder, seen from another GPU / TensorRT
    second = build_engine(fast_seg_model, cache_dir=tmp_path)
    assert second != first and part in second.name and len(trt.builds) == 1
    assert first.is_file()  # the other machine's engine is left alone


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda data: data[:-10], "is damaged (checksum mismatch)"),
        (lambda data: b"not an engine at all", "has no streamseg metadata (damaged)"),
    ],
    ids=["truncated", "garbage"],
)
def test_damaged_cache_file_is_rebuilt_with_a_log_line(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, caplog: pytest.LogCaptureFixture, damage, why: str
) -> None:
    trt, _ = fake_gpu()
    path = build_engine(fast_seg_model, cache_dir=tmp_path)
    good = path.read_bytes()
    path.write_bytes(damage(good))
    with caplog.at_level(logging.WARNING):
        assert build_engine(fast_seg_model, cache_dir=tmp_path) == path
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"TensorRT engine cache {path} {why}: rebuilding"
    ]
    assert len(trt.builds) == 2 and path.read_bytes() == good


def test_precision_options(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    trt, _ = fake_gpu()
    fp16 = built_spec(build_engine(fast_seg_model, cache_dir=tmp_path))
    fp32 = built_spec(build_engine(fast_seg_model, precision="fp32", cache_dir=tmp_path))
    assert fp16["built"]["flags"] == ["FP16"] and fp32["built"]["flags"] == []
    _, config = trt.builds[0]
    assert config.pools == {"WORKSPACE": 1 << 30}


def test_fp16_falls_back_to_fp32_on_a_gpu_without_fast_fp16(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt, _ = fake_gpu()
    trt.fast_fp16 = False
    with caplog.at_level(logging.WARNING):
        spec = built_spec(build_engine(fast_seg_model, cache_dir=tmp_path))
    assert spec["built"]["flags"] == [] and "no fast fp16: building an fp32 engine" in caplog.text


def test_fp16_without_the_capability_attribute(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    """Some TensorRT 10 builds no longer have Builder.platform_has_fast_fp16: fp16 is then assumed."""
    trt, _ = fake_gpu()
    trt.fast_fp16 = None
    assert built_spec(build_engine(fast_seg_model, cache_dir=tmp_path))["built"]["flags"] == ["FP16"]


def test_int8_calibrates_on_letterboxed_video_frames(
    tmp_path: Path, fake_gpu, dynamic_seg_model: Path, bikes_mp4: Path
) -> None:
    trt, _ = fake_gpu()
    path = build_engine(dynamic_seg_model, precision="int8", max_batch=4, calib=bikes_mp4, cache_dir=tmp_path)
    spec = built_spec(path)
    assert spec["built"]["flags"] == ["FP16", "INT8"]  # int8 where it can, fp16 for the layers that cannot
    batches = spec["built"]["calibration"]["batches"]
    assert 10 <= len(batches) <= 50  # bikes.mp4 has 250 frames: every 5th
    assert all(b["shape"] == [4, 3, 320, 320] for b in batches)  # the profile's opt batch
    assert all(0.0 <= b["min"] <= b["max"] <= 1.0 for b in batches)  # RGB in 0..1, like the daemon's input
    table = path.with_name(path.name + ".calib")
    assert table.read_bytes() == b"calibration-table"


def test_int8_from_an_image_folder_and_the_calibration_table_is_reused(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, bus_jpg: Path, zidane_jpg: Path
) -> None:
    trt, _ = fake_gpu()
    images = tmp_path / "frames"
    images.mkdir()
    for src in (bus_jpg, zidane_jpg):
        shutil.copy(src, images / src.name)
    (images / "notes.txt").write_text("not an image")
    cache = tmp_path / "cache"
    path = build_engine(fast_seg_model, precision="int8", calib=images, cache_dir=cache)
    assert len(built_spec(path)["built"]["calibration"]["batches"]) == 2
    path.write_bytes(b"damaged")  # rebuilt: the calibration table beside it is read instead of calibrating again
    assert built_spec(build_engine(fast_seg_model, precision="int8", calib=images, cache_dir=cache))["built"][
        "calibration"
    ] == {"from_cache": True, "batches": []}


def test_int8_needs_calibration_frames(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    fake_gpu()
    with pytest.raises(ModelError) as err:
        build_engine(fast_seg_model, precision="int8", cache_dir=tmp_path)
    assert str(err.value) == (
        f"int8 engine from {fast_seg_model}: calibration frames are needed (a video file or a folder of images)"
    )


def test_dynamic_batch_gets_one_profile_per_context(tmp_path: Path, fake_gpu, dynamic_seg_model: Path) -> None:
    trt, _ = fake_gpu()
    cfg = TensorRTConfig(cache_dir=str(tmp_path))
    create_engine(dynamic_seg_model, backend="tensorrt", max_batch=8, contexts=2, tensorrt=cfg).close()
    (path,) = tmp_path.glob("*.engine")
    assert ".dyn1-8x2." in path.name
    assert built_spec(path)["profiles"] == [[[1, 3, 320, 320], [8, 3, 320, 320], [8, 3, 320, 320]]] * 2


def test_static_batch_has_no_profile(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt, _ = fake_gpu()
    with caplog.at_level(logging.WARNING):
        path = build_engine(fast_seg_model, max_batch=4, cache_dir=tmp_path)
    assert ".static1." in path.name and built_spec(path)["profiles"] == []
    assert "yolov8n-seg-320.onnx has a fixed batch axis: max_batch 4 ignored" in caplog.text


def test_parse_and_build_failures_are_one_line(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    trt, _ = fake_gpu()
    trt.parse_error = "In node 12 (importConv): UNSUPPORTED_NODE"
    with pytest.raises(ModelError) as err:
        build_engine(fast_seg_model, cache_dir=tmp_path)
    assert str(err.value) == f"TensorRT cannot parse {fast_seg_model}: In node 12 (importConv): UNSUPPORTED_NODE"
    trt.parse_error = None
    trt.fail_build = True
    with pytest.raises(ModelError, match="TensorRT could not build an engine from .*its log above says why"):
        build_engine(fast_seg_model, cache_dir=tmp_path)
    assert list(tmp_path.glob("*.engine")) == []  # nothing half-written is left for the next start


def test_missing_tensorrt_when_building(tmp_path: Path, fast_seg_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(ModelError) as err:
        build_engine(fast_seg_model, cache_dir=tmp_path)
    assert str(err.value) == (
        f"building a TensorRT engine from {fast_seg_model} needs TensorRT and pycuda (tensorrt is not installed): "
        "pip install 'streamseg[tensorrt]', or on a Jetson use JetPack's TensorRT"
    )


def test_export_out_is_a_usable_ultralytics_engine(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    fake_gpu()
    out = build_engine(fast_seg_model, out=tmp_path / "out" / "model.engine", cache_dir=tmp_path / "cache")
    assert out == tmp_path / "out" / "model.engine"
    info = read_model_info(out)  # the metadata header: no GPU needed to read it
    assert info.names[0] == "person" and info.imgsz == (320, 320) and info.task == "segment"


def test_backend_tensorrt_on_onnx_matches_onnxruntime(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, bus_jpg: Path, zidane_jpg: Path
) -> None:
    """The whole TensorRT path (build, cache, bindings, copies, shapes) on the real model gives onnxruntime's
    detections (the fake engine computes with onnxruntime, so any difference is the TensorRT code's)."""
    trt, _ = fake_gpu()
    cfg = TensorRTConfig(cache_dir=str(tmp_path))
    engine = create_engine(fast_seg_model, backend="tensorrt", tensorrt=cfg)
    reference = create_engine(fast_seg_model, providers=["cpu"], threads=2)
    assert isinstance(engine, TensorRTEngine) and engine.info.names == reference.info.names
    for image_path in (bus_jpg, zidane_jpg):
        image = cv2.imread(str(image_path))
        ours = YoloModel(engine.info).predict(engine, image)
        theirs = YoloModel(reference.info).predict(reference, image)
        assert len(ours) >= 2
        assert ours.class_id.tolist() == theirs.class_id.tolist()
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=1e-3)
        np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-5)
    engine.close()
    create_engine(fast_seg_model, backend="tensorrt", tensorrt=cfg).close()
    assert len(trt.builds) == 1  # the daemon's second start opens the cached engine


def test_cached_engine_refused_by_tensorrt_is_rebuilt_once(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid-looking cache file TensorRT will not load (a driver update) is rebuilt, not a crash."""
    trt, _ = fake_gpu()
    cfg = TensorRTConfig(cache_dir=str(tmp_path))
    create_engine(fast_seg_model, backend="tensorrt", tensorrt=cfg).close()
    runtime = trt.Runtime
    refusals = []

    class RefusingOnce(runtime):
        def deserialize_cuda_engine(self, blob: bytes):  # noqa: ANN201
            if not refusals:
                refusals.append(1)
                return None
            return super().deserialize_cuda_engine(blob)

    trt.Runtime = RefusingOnce
    with caplog.at_level(logging.WARNING):
        engine = create_engine(fast_seg_model, backend="tensorrt", tensorrt=cfg)
    assert len(trt.builds) == 2 and engine.infer(np.zeros((1, 3, 320, 320), np.float32))[0].shape == (1, 116, 2100)
    assert "refused it on this GPU" in caplog.text and "rebuilding" in caplog.text


def test_int8_with_nothing_to_calibrate_on_is_one_line(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    trt, _ = fake_gpu()
    empty = tmp_path / "frames"
    empty.mkdir()
    with pytest.raises(ModelError) as err:
        build_engine(fast_seg_model, precision="int8", calib=empty, cache_dir=tmp_path)
    assert str(err.value) == f"calibration folder {empty} has no images (.jpg, .jpeg, .png, .bmp, .webp)"
    text = tmp_path / "clip.mp4"
    text.write_text("not a video")
    with pytest.raises(ModelError, match=f"cannot read calibration video {text}: "):
        build_engine(fast_seg_model, precision="int8", calib=text, cache_dir=tmp_path)
    assert trt.builds == []  # refused before TensorRT started building


def test_unknown_precision(tmp_path: Path, fake_gpu, fast_seg_model: Path) -> None:
    fake_gpu()
    with pytest.raises(ModelError, match="TensorRT precision 'int4': choose from fp16, fp32, int8"):
        build_engine(fast_seg_model, precision="int4", cache_dir=tmp_path)
