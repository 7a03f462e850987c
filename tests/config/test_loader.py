"""Config loading: defaults merge, ${VAR}, relative paths, and one clear line per problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamseg.config import load_config
from streamseg.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, check_models=False)
    return err.value.problems


BASE = """
defaults:
  model: {path: model.onnx, conf: 0.4}
  mask_format: rle
cameras:
  front:
    source: {url: video.mp4}
"""


def test_defaults_are_merged_and_camera_keys_win(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE
        + """
  back:
    source: {url: /abs/back.mp4}
    model: {iou: 0.5, conf: 0.6}
    mask_format: none
""",
    )
    config = load_config(path, check_models=False)
    front, back = config.cameras["front"], config.cameras["back"]
    assert (front.model.path, front.model.conf, front.model.iou, front.mask_format) == ("model.onnx", 0.4, 0.7, "rle")
    assert (back.model.path, back.model.conf, back.model.iou, back.mask_format) == ("model.onnx", 0.6, 0.5, "none")
    assert config.mqtt is None  # no section: nothing is published


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "    outputs: {video: {path: out/v.mp4}, jsonl: {path: out/d.jsonl}}\n")
    cam = load_config(path, check_models=False).cameras["front"]
    assert cam.source.url == str(tmp_path / "video.mp4")
    assert cam.outputs.video.path == tmp_path / "out" / "v.mp4"
    assert cam.outputs.jsonl.path == tmp_path / "out" / "d.jsonl"
    assert not cam.source.is_live and cam.source.policy == "block"


def test_live_sources_take_the_latest_frame_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("video.mp4", '"rtsp://cam.local/s1"'))
    cam = load_config(path, check_models=False).cameras["front"]
    assert cam.source.url == "rtsp://cam.local/s1"
    assert cam.source.is_live and cam.source.policy == "latest"


def test_a_recording_served_over_http_can_be_marked_not_live(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("{url: video.mp4}", '{url: "http://nas.local/clip.mp4", live: false}'))
    source = load_config(path, check_models=False).cameras["front"].source
    assert not source.is_live and source.policy == "block"


def test_env_substitution_with_default_and_password_never_echoed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FRONT_PW", "s3cret!")
    path = write(tmp_path, BASE.replace("video.mp4", '"rtsp://admin:${FRONT_PW}@cam/${STREAM:-s1}"'))
    assert load_config(path, check_models=False).cameras["front"].source.url == "rtsp://admin:s3cret!@cam/s1"

    bad = write(tmp_path, BASE.replace("video.mp4", '"rtspx://admin:${FRONT_PW}@cam/s1"'))
    lines = problems(bad)
    assert len(lines) == 1 and "cameras.front.source.url" in lines[0] and "scheme" in lines[0]
    assert "s3cret" not in lines[0]


def test_unset_env_var_names_field_and_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NOPE_PW", raising=False)
    lines = problems(write(tmp_path, BASE.replace("video.mp4", '"rtsp://a:${NOPE_PW}@cam/s1"')))
    assert lines == [f"{tmp_path / 'cameras.yaml'}: cameras.front.source.url: environment variable NOPE_PW is not set"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ("    fps: -1\n", "cameras.front.fps: Input should be greater than 0"),
        ("    sourc: {url: x}\n", "cameras.front.sourc: unknown key"),
        ("    mask_format: bitmap\n", "cameras.front.mask_format: Input should be 'polygon', 'rle' or 'none'"),
        ("    tracker: {type: deepsort}\n", "cameras.front.tracker.type:"),
        ("    outputs: {video: {}}\n", "cameras.front.outputs.video.path: required key is missing"),
        ("    model: {backend: openvino}\n", "cameras.front.model.backend: Input should be 'auto', 'onnxruntime', "),
        (
            "    model: {triton: {url: 'http://triton:8000'}}\n",
            "cameras.front.model.triton.url: expected grpc://HOST:PORT, got 'http://triton:8000'",
        ),
        (
            "    model: {tensorrt: {precision: int4}}\n",
            "cameras.front.model.tensorrt.precision: Input should be 'fp16'",
        ),
        ("    model: {tensorrt: {calib: frames/}}\n", "cameras.front.model.tensorrt.calib: file or folder not found: "),
    ],
)
def test_bad_values_name_the_field_path(tmp_path: Path, patch: str, expected: str) -> None:
    lines = problems(write(tmp_path, BASE + patch))
    assert len(lines) == 1, lines
    assert expected in lines[0]
    assert lines[0].startswith(str(tmp_path / "cameras.yaml"))


def test_bad_value_inherited_from_defaults_says_so(tmp_path: Path) -> None:
    lines = problems(write(tmp_path, BASE.replace("conf: 0.4", "conf: 1.5")))
    assert "cameras.front.model.conf: Input should be less than or equal to 1" in lines[0]
    assert "(set in defaults.model.conf)" in lines[0]


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = """
mqtt: {port: 70000, qos: 3}
cameras:
  a: {source: {url: a.mp4}}
  b: {source: {url: b.mp4}, model: {path: m.onnx, iou: 2}}
"""
    lines = problems(write(tmp_path, text))
    joined = "\n".join(lines)
    for where in ("mqtt.port", "mqtt.qos", "cameras.a.model: required key is missing", "cameras.b.model.iou"):
        assert where in joined
    assert len(lines) == 4


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    lines = problems(write(tmp_path, "cameras:\n  front:\n    source: {url: a.mp4\n    fps: 5\n"))
    assert len(lines) == 1 and "YAML syntax error" in lines[0] and "line " in lines[0]


def test_structure_errors(tmp_path: Path) -> None:
    assert "at least one camera" in problems(write(tmp_path, "cameras: {}\n"))[0]
    assert "cameras: required key is missing" in problems(write(tmp_path, "mqtt: {}\n"))[0]
    assert "mapping" in problems(write(tmp_path, "- a\n- b\n"))[0]
    assert "camera names" in problems(write(tmp_path, BASE.replace("front:", "front/door:")))[0]


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [
        f"{path}: cameras.front.model.path: model file not found: {tmp_path / 'model.onnx'}"
        " (set in defaults.model.path)"
    ]


def test_a_triton_model_needs_no_local_file(tmp_path: Path) -> None:
    """The edge box asks the server for the model: `validate` does not look for the file."""
    path = write(tmp_path, BASE.replace("path: model.onnx", "path: yolov8n-seg, backend: triton"))
    model = load_config(path).cameras["front"].model
    assert (model.backend, model.triton.url, model.triton.model_name) == ("triton", "grpc://127.0.0.1:8001", None)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read config file" in err.value.problems[0]


def test_demo_pipeline_is_valid(seg_model: Path, bikes_mp4: Path, monkeypatch) -> None:
    monkeypatch.setenv("STREAMSEG_SHARED", str(seg_model.parent.parent))
    config = load_config(Path(__file__).parents[2] / "pipelines" / "demo.yaml")
    cam = config.cameras["bikes"]
    assert Path(cam.source.url) == bikes_mp4
    assert cam.outputs.video is not None and cam.outputs.jsonl is not None


def test_example_cameras_config_is_valid(monkeypatch) -> None:
    """pipelines/cameras.example.yaml is what users copy: it must stay valid as the schema evolves."""
    monkeypatch.setenv("FRONT_PW", "pw1")
    monkeypatch.setenv("GARAGE_PW", "pw2")
    config = load_config(Path(__file__).parents[2] / "pipelines" / "cameras.example.yaml", check_models=False)
    assert set(config.cameras) == {"front", "garage"}
    garage = config.cameras["garage"]
    assert garage.model.path == "yolov8n-seg-640" and garage.model.conf == 0.4 and garage.fps == 10
    assert garage.source.is_live and garage.source.options == {"rtsp_transport": "tcp"}


@pytest.mark.parametrize(
    ("patch", "where", "what"),
    [
        (BASE.replace("front:", '"front\\n":'), "cameras: ", r"'front\n'"),
        (BASE.replace("front:", '"fr\\0nt":'), "cameras: ", r"'fr\x00nt'"),
        (BASE.replace("front:", "front+:"), "cameras: ", "'front+'"),
        (BASE + '    tracker: {type: bytetrack}\n    zones: {"door\\n": {points: [[0, 0], [9, 0], [9, 9]]}}\n',
         "cameras.front.zones: ", r"'door\n'"),
        (BASE + '    tracker: {type: bytetrack}\n    lines: {"a#": {start: [0, 0], end: [9, 9]}}\n',
         "cameras.front.lines: ", "'a#'"),
        ('mqtt: {topic_prefix: "site\\n"}\n' + BASE, "mqtt.topic_prefix: ", "control character"),
        ('mqtt: {topic_prefix: "site\\0"}\n' + BASE, "mqtt.topic_prefix: ", "control character"),
        ("mqtt: {topic_prefix: site/+}\n" + BASE, "mqtt.topic_prefix: ", "wildcard"),
        ("mqtt: {topic_prefix: $SYS/x}\n" + BASE, "mqtt.topic_prefix: ", "'$'"),
        ("mqtt: {topic_prefix: a//b}\n" + BASE, "mqtt.topic_prefix: ", "empty topic level"),
        ("mqtt: {topic_prefix: /a}\n" + BASE, "mqtt.topic_prefix: ", "empty topic level"),
        ('mqtt: {topic_prefix: ""}\n' + BASE, "mqtt.topic_prefix: ", "empty"),
        ("mqtt: {topic_prefix: " + "é" * 40000 + "}\n" + BASE, "mqtt.topic_prefix: ", "65535"),
    ],
)  # fmt: skip
def test_names_that_cannot_be_mqtt_topic_levels_are_refused(tmp_path: Path, patch: str, where: str, what: str) -> None:
    """A trailing newline, a NUL or a wildcard in a name would make every message of it fail at the broker."""
    lines = problems(write(tmp_path, patch))
    assert len(lines) == 1, lines
    assert f"cameras.yaml: {where}" in lines[0] and what in lines[0], lines[0]
    assert "\n" not in lines[0] and "\0" not in lines[0]


def test_a_trailing_slash_on_the_prefix_is_dropped_and_unicode_levels_are_fine(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "mqtt: {topic_prefix: haus/küche/}\n" + BASE), check_models=False)
    assert config.mqtt.topic_prefix == "haus/küche"


def alias_levels(levels: int, indent: str) -> str:
    """`levels` anchors, each a list of 9 references to the one before: 9**levels strings once expanded."""
    lines = [f'{indent}lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    for i in range(1, levels):
        lines.append(f"{indent}lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]\n")
    return "".join(lines)


# The classic ~1 KB "billion laughs": 9**9 (387 million) strings once expanded.
BILLION_LAUGHS = "defaults:\n" + alias_levels(9, "  ") + "cameras:\n  a: {source: {url: a.mp4}}\n"
# Within the alias limit, but `defaults` is copied into each of 2000 cameras: 120 million values (23 KB).
DEFAULTS_BOMB = (
    "defaults:\n  x:\n" + alias_levels(5, "    ") + "cameras:\n" + "".join(f"  c{i}: {{}}\n" for i in range(2000))
)

# The CLI in a child process whose address space is capped at 1 GiB (the unfixed loader needs many GB: there it
# dies with MemoryError instead of taking the machine down); the child reports its own peak RSS last.
VALIDATE_CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
from streamseg.cli import main
code = main(["validate", sys.argv[1]])
# VmHWM: this process's own peak (ru_maxrss would carry the parent's over fork + exec, e.g. pytest's)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak_kb // 1024)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BILLION_LAUGHS, "YAML aliases expand to more than 200000 values (the limit)"),
        (DEFAULTS_BOMB, "defaults: copied into 2000 cameras, it makes more than 200000 values (the limit)"),
    ],
    ids=["billion-laughs", "defaults-copies"],
)
def test_alias_bombs_fail_at_once_in_one_line_with_bounded_memory(tmp_path: Path, text: str, problem: str) -> None:
    assert len(text) < 25_000
    path = write(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-c", VALIDATE_CAPPED, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [f"{path}: {problem}"]
    assert int(proc.stdout.split()[-1]) < 200  # MB: the bomb is measured, never expanded


def test_anchors_merge_keys_and_env_vars_still_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CAM_PW", "pw")
    text = """
defaults:
  model: {path: m.onnx}
cameras:
  front:
    source: &src {url: "rtsp://u:${CAM_PW}@cam/1", timeout: 3, reconnect: {initial: 2}}
  back:
    source: {<<: *src, url: "rtsp://u:${CAM_PW}@cam/2"}
  side:
    source: *src
"""
    cams = load_config(write(tmp_path, text), check_models=False).cameras
    assert [c.source.url for c in cams.values()] == ["rtsp://u:pw@cam/1", "rtsp://u:pw@cam/2", "rtsp://u:pw@cam/1"]
    assert all(c.source.timeout == 3 and c.source.reconnect.initial == 2 for c in cams.values())


MODEL = "defaults: {model: {path: m.onnx}}\n"  # line 1: the rest would be a valid config without the problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a second `front:` would silently replace the first
            MODEL + "cameras:\n  front:\n    source: {url: a.mp4}\n  back:\n    source: {url: b.mp4}\n"
            "  front:\n    source: {url: c.mp4}\n",
            "line 7, column 3: duplicate key 'front' (first on line 3)",
        ),
        (
            MODEL + "cameras: {a: {source: {url: a.mp4, url: b.mp4}}}\n",
            "line 2, column 36: duplicate key 'url' (first on line 2)",
        ),
        (
            MODEL + 'cameras:\n  a: {source: {url: a.mp4}, fps: 5, "fps": 10}\n',
            "line 3, column 37: duplicate key 'fps'",
        ),
        (
            MODEL + "cameras: {a: {source: {url: a.mp4}, fps: 5}}\nmodel: {}\ncameras: {}\n",
            "line 4, column 1: duplicate",
        ),
        ("x: &a [1, *a]\ncameras: {}\n", "line 1, column 4: recursive YAML alias"),
        ("cameras: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 64 levels"),
    ],
)
def test_duplicate_keys_recursion_and_deep_nesting_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    lines = problems(write(tmp_path, text))
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'cameras.yaml'}: ") and expected in lines[0], lines


def test_oversized_or_binary_files_are_refused_before_parsing(tmp_path: Path) -> None:
    big = write(tmp_path, "# padding\n" * 110_000 + BASE)  # 1.1 MB
    assert problems(big) == [f"{big}: larger than 1 MiB, the limit for a config file"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"cameras: \xff\xfe\n")
    assert problems(binary) == [f"{binary}: not a UTF-8 text file (byte 9)"]


def test_live_demo_pipeline_is_valid(seg_model: Path, bikes_mp4: Path, monkeypatch) -> None:
    """pipelines/demo-live.yaml (`bash tools/demo.sh --live`): the file looped in real time, the page on :8080."""
    monkeypatch.setenv("STREAMSEG_SHARED", str(seg_model.parent.parent))
    monkeypatch.delenv("HTTP_PORT", raising=False)
    config = load_config(Path(__file__).parents[2] / "pipelines" / "demo-live.yaml")
    source = config.cameras["bikes"].source
    assert Path(source.url) == bikes_mp4 and source.loop and source.realtime and not source.is_live
    assert config.http is not None and (config.http.host, config.http.port) == ("127.0.0.1", 8080)
