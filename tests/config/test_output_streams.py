"""The annotated-output settings: rtsp, hls, segmented video with retention; the examples users copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.config import load_config
from streamseg.config.outputs import parse_keep
from streamseg.vocab import RtspTransport, VideoEncoder
from tests.config.test_output_paths import config, problems

ROOT = Path(__file__).parents[2]


def test_the_docker_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker/config/cameras.example.yaml is what compose users copy: its outputs.rtsp must validate."""
    monkeypatch.setenv("FRONT_PW", "pw1")
    monkeypatch.setenv("GARAGE_PW", "pw2")
    monkeypatch.setenv("HTTP_TOKEN", "tok")
    cfg = load_config(ROOT / "docker" / "config" / "cameras.example.yaml", check_models=False)
    front = cfg.cameras["front"].outputs.rtsp
    assert front is not None and front.url == "rtsp://mediamtx:8554/front"
    assert front.transport == RtspTransport.TCP and front.encoder == VideoEncoder.AUTO


def test_defaults_of_the_streams(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        config("{rtsp: {url: 'rtsp://127.0.0.1:8554/a'}, hls: {dir: hls/a}, video: {path: a.mp4}}", model="m.onnx")
    )
    outputs = load_config(path, check_models=False).cameras["a"].outputs
    assert outputs.rtsp and outputs.rtsp.preset == "ultrafast" and outputs.rtsp.bitrate is None
    assert outputs.rtsp.queue_size == 8 and outputs.rtsp.timeout == 5.0
    assert outputs.hls and outputs.hls.dir == tmp_path / "hls" / "a" and outputs.hls.segment_seconds == 2.0
    assert outputs.hls.list_size == 5
    assert outputs.video and outputs.video.segment_seconds is None and outputs.video.keep is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("24h", (86400.0, None)), ("30m", (1800.0, None)), ("7d", (604800.0, None)), ("90s", (90.0, None)),
     ("2GB", (None, 2 * 10**9)), ("500 MB", (None, 500 * 10**6)), ("1.5GiB", (None, int(1.5 * 2**30)))],
)  # fmt: skip
def test_keep_is_a_duration_or_a_size(value: str, expected: tuple) -> None:
    assert parse_keep(value) == expected


@pytest.mark.parametrize(
    ("outputs", "field", "message"),
    [
        ("{video: {path: a.mp4, keep: 24h}}", "cameras.a.outputs.video: ", "keep needs segment_seconds"),
        ("{video: {path: a.mp4, segment_seconds: 60, keep: 2 parsecs}}", "cameras.a.outputs.video.keep: ",
         "neither a duration (30m, 24h, 7d) nor a size (500MB, 2GB)"),
        ("{video: {path: a.mp4, segment_seconds: 60, keep: 0h}}", "cameras.a.outputs.video.keep: ", "more than 0"),
        ("{rtsp: {url: 'http://u:hunter22@server/front'}}", "cameras.a.outputs.rtsp.url: ",
         "'http://u:***@server/front' is not an rtsp:// or rtsps:// URL"),
        ("{rtsp: {url: 'rtsp://x/a', encoder: vaapi}}", "cameras.a.outputs.rtsp.encoder: ", "'auto', 'libx264'"),
        ("{rtsp: {url: 'rtsp://x/a', transport: http}}", "cameras.a.outputs.rtsp.transport: ", "'tcp' or 'udp'"),
        ("{hls: {dir: h, list_size: 0}}", "cameras.a.outputs.hls.list_size: ", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_stream_settings_name_their_field(tmp_path: Path, outputs: str, field: str, message: str) -> None:
    (found,) = problems(tmp_path, config(outputs))
    assert found.startswith(field) and message in found and "hunter22" not in found


def test_an_hls_folder_holding_an_input_or_another_output_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, config("{hls: {dir: media}}", "{jsonl: {path: out/b.jsonl}, hls: {dir: out}}"))
    assert found == [
        f"cameras.a.outputs.hls.dir: {tmp_path / 'media'} holds {tmp_path / 'media/a.mp4'}, which is the source "
        "of camera 'a' (cameras.a.source.url): an HLS folder must hold nothing else",
        f"cameras.b.outputs.hls.dir: {tmp_path / 'out'} holds {tmp_path / 'out/b.jsonl'}, which is also the output "
        "cameras.b.outputs.jsonl.path: an HLS folder must hold nothing else",
    ]


def test_the_config_folder_or_a_shared_hls_folder_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, config("{hls: {dir: .}}"))
    assert found == [
        f"cameras.a.outputs.hls.dir: {tmp_path} holds {tmp_path / 'cameras.yaml'}, which is the config file: "
        "an HLS folder must hold nothing else",
        f"cameras.a.outputs.hls.dir: {tmp_path} holds {tmp_path / 'media/a.mp4'}, which is the source of camera "
        "'a' (cameras.a.source.url): an HLS folder must hold nothing else",
    ]
    found = problems(tmp_path, config("{hls: {dir: hls}}", "{hls: {dir: hls/b}}"))
    assert found == [
        f"cameras.b.outputs.hls.dir: {tmp_path / 'hls/b'} overlaps cameras.a.outputs.hls.dir: "
        "each HLS output needs its own folder"
    ]


def test_a_file_named_like_a_segment_is_refused(tmp_path: Path) -> None:
    segmented = "{video: {path: out/front.mp4, segment_seconds: 60, keep: 1d}}"
    found = problems(tmp_path, config(segmented, "{jsonl: {path: out/front-20260101-000000.mp4}}"))
    assert found == [
        f"cameras.a.outputs.video.path: {tmp_path / 'out/front-20260101-000000.mp4'} is also the output "
        "cameras.b.outputs.jsonl.path, and its name is one of this output's segments (which retention deletes)"
    ]


def test_two_cameras_publishing_to_one_rtsp_path_are_refused(tmp_path: Path) -> None:
    url = "rtsp://pub:pw123456@server:8554/live"
    found = problems(tmp_path, config(f"{{rtsp: {{url: '{url}'}}}}", f"{{rtsp: {{url: '{url}'}}}}"))
    assert found == [
        "cameras.b.outputs.rtsp.url: rtsp://pub:***@server:8554/live is also the output cameras.a.outputs.rtsp.url: "
        "one stream per RTSP path"
    ]
