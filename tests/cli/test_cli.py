"""The CLI contract of DESIGN.md, run as a user would: a subprocess, exit codes, stdout JSON, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamseg.sinks.serialize import detection_dicts  # noqa: F401 - the wire format under test


def streamseg(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamseg", *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_validate_ok_and_bad(tmp_path: Path, seg_model: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"cameras:\n  a:\n    source: {{url: a.mp4}}\n    model: {{path: {seg_model}}}\n")
    proc = streamseg("validate", str(good))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "cameras:\n  front:\n    source: {url: 'rtsp://admin:hunter2@cam/1', loop: maybe}\n"
        "    fps: 0\n    model: {path: missing.onnx}\n"
    )
    proc = streamseg("validate", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "cameras.front.source.loop",
        "cameras.front.fps",
        "cameras.front.model.path",
    ]
    assert all(line.startswith(f"{bad}: ") for line in lines)


def test_run_refuses_an_invalid_config_the_same_way(tmp_path: Path, seg_model: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"cameras:\n  front:\n    source: {{url: a.mp4}}\n    model: {{path: {seg_model}, conf: 7}}\n")
    line = one_line_error(streamseg("run", str(bad)))
    assert line == f"{bad}: cameras.front.model.conf: Input should be less than or equal to 1"


def test_predict_image_json(seg_model: Path, bus_jpg: Path) -> None:
    proc = streamseg("predict", "--model", str(seg_model), "--source", str(bus_jpg))
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert (obj["source"], obj["frame"], obj["width"], obj["height"]) == (str(bus_jpg), 0, 810, 1080)
    labels = sorted(d["label"] for d in obj["detections"])
    assert labels.count("bus") == 1 and labels.count("person") in (3, 4)
    for det in obj["detections"]:
        assert set(det) == {"class_id", "label", "score", "box", "mask"}
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= 810 and 0 <= y1 < y2 <= 1080 and det["score"] >= 0.25
        assert det["mask"]["format"] == "polygon" and len(det["mask"]["points"]) >= 3
        for x, y in det["mask"]["points"]:
            assert x1 - 2 <= x <= x2 + 2 and y1 - 2 <= y <= y2 + 2


def test_predict_rle_to_file_and_thresholds(tmp_path: Path, seg_model: Path, zidane_jpg: Path) -> None:
    out = tmp_path / "sub" / "z.json"
    args = ["predict", "--model", str(seg_model), "--source", str(zidane_jpg), "--mask-format", "rle"]
    proc = streamseg(*args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(out.read_text())
    assert [d["label"] for d in obj["detections"]] == ["person", "person"]
    assert all(d["mask"]["format"] == "rle" and d["mask"]["size"] == [720, 1280] for d in obj["detections"])
    strict = json.loads(streamseg(*args, "--conf", "0.99").stdout)
    assert strict["detections"] == []


def test_predict_video_writes_one_line_per_frame(tmp_path: Path, seg_model: Path, carphone_mp4: Path) -> None:
    out = tmp_path / "carphone.jsonl"
    args = ["--model", str(seg_model), "--source", str(carphone_mp4), "--mask-format", "none", "--out", str(out)]
    proc = streamseg("predict", *args)
    assert proc.returncode == 0, proc.stderr
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(120))
    assert all((f["width"], f["height"]) == (176, 144) for f in frames)
    persons = sum(any(d["label"] == "person" for d in f["detections"]) for f in frames)
    assert persons > 100  # a person talking on a phone fills the clip
    assert all("mask" not in d for f in frames for d in f["detections"])


def test_predict_errors_are_one_clear_line(tmp_path: Path, seg_model: Path, bus_jpg: Path) -> None:
    line = one_line_error(streamseg("predict", "--model", str(tmp_path / "nope.onnx"), "--source", str(bus_jpg)))
    assert "model file not found" in line and "nope.onnx" in line

    line = one_line_error(streamseg("predict", "--model", "yolov9x-seg-1280", "--source", str(bus_jpg)))
    assert "yolov9x-seg-1280" in line and "yolo export" in line

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    line = one_line_error(streamseg("predict", "--model", str(seg_model), "--source", str(broken)))
    assert "broken.mp4" in line

    fake_jpg = tmp_path / "fake.jpg"
    fake_jpg.write_text("nope")
    line = one_line_error(streamseg("predict", "--model", str(seg_model), "--source", str(fake_jpg)))
    assert "fake.jpg" in line

    line = one_line_error(streamseg("predict", "--model", str(seg_model), "--source", str(tmp_path / "x.jpg")))
    assert "source file not found" in line

    line = one_line_error(streamseg("predict", "--model", str(seg_model), "--source", str(bus_jpg), "--imgsz", "640"))
    assert "--imgsz 640" in line and "320" in line


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["predict", "--help"], ["bench", "--help"]])
def test_help(args: list[str]) -> None:
    assert streamseg(*args).returncode == 0


def test_bench_reports_ratios_against_the_raw_engine(fast_seg_model: Path, bikes_mp4: Path) -> None:
    """The benchmark runs and reports its figures (the figures themselves are for humans, not asserted)."""
    proc = streamseg(
        "bench", "--model", str(fast_seg_model), "--source", str(bikes_mp4),
        "--frames", "15", "--cameras", "2", "--repeat", "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["cameras"] == 2 and figures["frames"] >= 30 and len(figures["runs"]) == 2
    for run in figures["runs"]:
        assert run["raw_fps"] > 0 and run["stage_fps"] > 0 and run["pipeline_fps"] > 0
    ratios = sorted(r["pipeline_fps"] / r["raw_fps"] for r in figures["runs"])
    assert figures["ratios"]["pipeline_vs_raw"] == pytest.approx(sum(ratios) / 2, abs=0.002)  # median of two
    assert set(figures["stages_ms"]) == {"preprocess", "infer", "postprocess", "track", "handoff"}
    assert set(figures["sinks_ms"]) == {"jsonl", "video"} and figures["peak_rss_mb"] > 0
    # the pipeline does the engine's work and more (decoding, masks, tracking, outputs): it costs more CPU a frame
    cpu = figures["cpu_ms_per_frame"]
    assert cpu["pipeline"] > cpu["stage"] > 0
    assert figures["cpu_bound_fps"] == pytest.approx(figures["cores"] * 1000 / cpu["pipeline"], rel=0.01)
    assert figures["workers"] >= 1 and figures["batch_size"] == 1
    assert figures["baseline_engine"].startswith("onnxruntime")


def test_bench_measures_its_baseline_on_the_backend_and_device_asked_for(
    torchscript_model: Path, bikes_mp4: Path
) -> None:
    """A GPU user benches TorchScript on cuda against TorchScript on cuda, not against onnxruntime on the CPU."""
    pytest.importorskip("torch", reason="torch is not installed: pip install 'streamseg[torch]'")
    proc = streamseg(
        "bench", "--model", str(torchscript_model), "--source", str(bikes_mp4), "--device", "cpu",
        "--frames", "8", "--no-video", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["engine"].startswith("torchscript[cpu]") and figures["baseline_engine"] == "torchscript[cpu]"
    assert figures["frames"] >= 8 and figures["runs"][0]["pipeline_fps"] > 0


def test_validate_names_each_bad_mqtt_name_on_its_own_line(tmp_path: Path, seg_model: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'mqtt: {topic_prefix: "site\\0"}\n'
        f'cameras:\n  "front\\n":\n    source: {{url: a.mp4}}\n    model: {{path: {seg_model}}}\n'
    )
    proc = streamseg("validate", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == ["mqtt.topic_prefix", "cameras"], lines
    assert r"'front\n'" in lines[1]
