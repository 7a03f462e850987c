"""`validate` refuses an output path that would write over an input, the outbox or another output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamseg.config import load_config
from streamseg.errors import ConfigError


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, check_models=False)
    prefix = f"{path}: "
    assert all(p.startswith(prefix) for p in err.value.problems)
    return [p.removeprefix(prefix) for p in err.value.problems]


def config(outputs_a: str, outputs_b: str = "{}", mqtt: str = "", model: str = "m.onnx") -> str:
    return f"""
{mqtt}
defaults:
  model: {{path: {model}}}
cameras:
  a:
    source: {{url: media/a.mp4}}
    outputs: {outputs_a}
  b:
    source: {{url: rtsp://cam/stream}}
    outputs: {outputs_b}
"""


def test_an_output_over_the_camera_source_is_refused_however_spelled(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.mp4").write_bytes(b"video")
    (tmp_path / "link").symlink_to(tmp_path / "media")
    found = problems(tmp_path, config(f"{{jsonl: {{path: {tmp_path}/link/a.mp4}}}}"))  # through a symlink
    assert found == [
        f"cameras.a.outputs.jsonl.path: {tmp_path / 'link/a.mp4'} is the source of camera 'a' "
        "(cameras.a.source.url): an output must not write to it"
    ]


def test_an_output_over_the_config_file_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, config("{video: {path: cameras.yaml}}"))
    assert found == [
        f"cameras.a.outputs.video.path: {tmp_path / 'cameras.yaml'} is the config file: an output must not write to it"
    ]


def test_two_outputs_in_one_file_are_refused_across_cameras_and_kinds(tmp_path: Path) -> None:
    found = problems(tmp_path, config("{video: {path: out/x}}", "{jsonl: {path: out/x}}"))
    assert found == [
        f"cameras.b.outputs.jsonl.path: {tmp_path / 'out/x'} is also the output cameras.a.outputs.video.path: "
        "an output must not write to it"
    ]


def test_an_output_shared_through_defaults_says_where_it_was_set(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        "defaults:\n  model: {path: m.onnx}\n  outputs: {jsonl: {path: all.jsonl}}\n"
        "cameras:\n  a: {source: {url: rtsp://cam/1}}\n  b: {source: {url: rtsp://cam/2}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, check_models=False)
    assert err.value.problems == [
        f"{path}: cameras.b.outputs.jsonl.path: {tmp_path / 'all.jsonl'} is also the output "
        "cameras.a.outputs.jsonl.path: an output must not write to it (set in defaults.outputs.jsonl.path)"
    ]


def test_an_output_over_the_mqtt_outbox_is_refused(tmp_path: Path) -> None:
    mqtt = "mqtt: {host: broker, outbox: {path: state/outbox.sqlite}}"
    found = problems(
        tmp_path, config("{jsonl: {path: state/outbox.sqlite}}", "{jsonl: {path: state/outbox.sqlite-wal}}", mqtt)
    )
    assert found == [
        f"cameras.a.outputs.jsonl.path: {tmp_path / 'state/outbox.sqlite'} is the MQTT outbox (mqtt.outbox.path): "
        "an output must not write to it",
        f"cameras.b.outputs.jsonl.path: {tmp_path / 'state/outbox.sqlite-wal'} is a file of the MQTT outbox "
        "(mqtt.outbox.path): an output must not write to it",
    ]


def test_an_output_over_a_model_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model")
    found = problems(tmp_path, config("{jsonl: {path: m.onnx}}"))
    assert found == [
        f"cameras.a.outputs.jsonl.path: {tmp_path / 'm.onnx'} is the model of camera 'a' (cameras.a.model.path): "
        "an output must not write to it"
    ]


def test_distinct_outputs_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(config("{video: {path: out/a.mp4}, jsonl: {path: out/a.jsonl}}", "{jsonl: {path: out/b.jsonl}}"))
    assert set(load_config(path, check_models=False).cameras) == {"a", "b"}


def test_validate_exits_2_with_one_line_per_collision(tmp_path: Path, seg_model: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(config("{video: {path: cameras.yaml}, jsonl: {path: media/a.mp4}}", model=str(seg_model)))
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line.split(": ")[1] for line in proc.stderr.strip().splitlines()] == [
        "cameras.a.outputs.video.path",
        "cameras.a.outputs.jsonl.path",
    ]
