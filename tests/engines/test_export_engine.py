"""`streamseg export --format engine`: the TensorRT build of tensorrt_build.py (the daemon's code and cache),
through the fakes of TensorRT 10 and pycuda in tests/engines/fake_tensorrt.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.cli import main
from tests.engines.fake_tensorrt import built_spec


def test_export_engine_builds_into_the_daemons_cache(
    tmp_path: Path, fake_gpu, fast_seg_model: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    trt, _ = fake_gpu()
    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "cache"))
    assert main(["export", "--model", str(fast_seg_model), "--format", "engine", "--half"]) == 0
    (cached,) = (tmp_path / "cache").glob("*.engine")
    assert ".fp16.static1." in cached.name and str(cached) in capsys.readouterr().out
    assert built_spec(cached)["built"]["flags"] == ["FP16"]

    out = tmp_path / "m.engine"
    assert main(["export", "--model", str(fast_seg_model), "--format", "engine", "--out", str(out)]) == 0
    assert built_spec(out)["built"]["flags"] == []  # fp32 without --half, as Ultralytics' export
    assert len(trt.builds) == 2
    assert main(["export", "--model", str(fast_seg_model), "--format", "engine", "--half"]) == 0
    assert len(trt.builds) == 2, "the daemon's cached engine is reused"


def test_export_int8_engine_calibrates_on_the_frames(tmp_path: Path, fake_gpu, fast_seg_model: Path, bikes_mp4) -> None:
    fake_gpu()
    out = tmp_path / "i8.engine"
    args = ["export", "--model", str(fast_seg_model), "--format", "engine", "--int8", "--calib", str(bikes_mp4)]
    assert main([*args, "--out", str(out)]) == 0
    assert set(built_spec(out)["built"]["flags"]) == {"FP16", "INT8"}
