"""Model IDs from a mirror: a real local HTTP server stands in for it (progress, sha256, offline, cache hits)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamseg.config import load_config
from streamseg.engines import create_engine
from streamseg.errors import ModelError
from streamseg.models import resolve_model
from streamseg.models.download import download_model
from tests.cli.test_cli import one_line_error, streamseg
from tests.mqtt_broker import free_port

MODEL_ID = "yolov8n-seg-640"  # a seed ID; the mirror serves the (untrained) YOLOv8n-seg 640 graph under it


class Mirror:
    """A folder served over HTTP on a loopback port; `requests` lists the paths asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/models"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def sums(self, **digests: str) -> None:
        (self.folder / "models" / "SHA256SUMS").write_text(
            "".join(f"{digest}  {name}.onnx\n" for name, digest in digests.items())
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path: Path, untrained_v8_640: Path) -> Iterator[Mirror]:
    (tmp_path / "www" / "models").mkdir(parents=True)
    shutil.copyfile(untrained_v8_640, tmp_path / "www" / "models" / f"{MODEL_ID}.onnx")
    server = Mirror(tmp_path / "www")
    yield server
    server.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache ($STREAMSEG_CACHE/models), no $STREAMSEG_MODELS, no mirror in the environment."""
    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STREAMSEG_MODELS", raising=False)
    monkeypatch.delenv("STREAMSEG_MODEL_URL", raising=False)
    return tmp_path / "cache" / "models"


def _offline_url() -> str:
    return f"http://127.0.0.1:{free_port()}/models"  # nothing listens there


def test_an_id_is_downloaded_with_progress_verified_and_loads(
    mirror: Mirror, cache: Path, untrained_v8_640: Path
) -> None:
    mirror.sums(**{MODEL_ID: _sha256(untrained_v8_640)})
    bar = io.StringIO()
    path = download_model(MODEL_ID, mirror.url, cache, progress=bar)
    assert path == cache / f"{MODEL_ID}.onnx"
    assert path.read_bytes() == untrained_v8_640.read_bytes()
    assert [p.name for p in cache.iterdir()] == [path.name]  # no .part left behind
    drawn = bar.getvalue()
    assert f"{MODEL_ID}.onnx" in drawn and "100%" in drawn and "13.2M" in drawn  # tqdm: 13,849,633 B in KiB units
    with create_engine(path, providers=["cpu"], threads=1) as engine:
        assert engine.info.imgsz == (640, 640) and engine.info.task == "segment"


def test_resolve_downloads_once_then_the_cache_serves_it_offline(
    mirror: Mirror, cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STREAMSEG_MODEL_URL", mirror.url)
    with caplog.at_level(logging.INFO, logger="streamseg.models.download"):
        path = resolve_model(MODEL_ID)
    assert path == (cache / f"{MODEL_ID}.onnx").resolve()
    # not a terminal: progress as log lines, and a warning that the mirror had no checksum for it
    messages = [r.getMessage() for r in caplog.records]
    assert any("downloading yolov8n-seg-640.onnx: 50% of 13.8 MB" in m for m in messages), messages
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("downloaded without a checksum" in m for m in warnings), warnings
    assert mirror.requests == [f"/models/{MODEL_ID}.onnx", "/models/SHA256SUMS"]
    # cache hit: the mirror is gone (no network), the ID still resolves, nothing is asked for
    mirror.close()
    monkeypatch.setenv("STREAMSEG_MODEL_URL", _offline_url())
    assert resolve_model(MODEL_ID) == path
    assert resolve_model(MODEL_ID, mirror=_offline_url()) == path


@pytest.mark.parametrize("pinned", [False, True])
def test_a_checksum_mismatch_is_refused_and_nothing_is_saved(mirror: Mirror, cache: Path, pinned: bool) -> None:
    wrong = "0" * 64
    if pinned:
        mirror.sums(**{MODEL_ID: wrong.replace("0", "1")})  # the config's pin wins over the mirror's list
    else:
        mirror.sums(**{MODEL_ID: wrong})
    with pytest.raises(ModelError) as err:
        resolve_model(MODEL_ID, mirror=mirror.url, sha256=wrong if pinned else None)
    message = str(err.value)
    assert "\n" not in message
    assert f"expected {wrong}" in message and ("model.sha256" if pinned else "SHA256SUMS") in message
    assert "refused" in message
    assert not cache.exists() or list(cache.iterdir()) == []  # neither the model nor a .part file


def test_no_network_says_exactly_what_to_do(cache: Path) -> None:
    url = _offline_url()
    with pytest.raises(ModelError) as err:
        resolve_model(MODEL_ID, mirror=url)
    message = str(err.value)
    assert "\n" not in message
    assert f"cannot download {url}/{MODEL_ID}.onnx" in message
    assert f"curl -fLo {MODEL_ID}.onnx '{url}/{MODEL_ID}.onnx'" in message
    assert f"copy it to {cache / (MODEL_ID + '.onnx')}" in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_an_id_the_mirror_lacks(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(ModelError, match=r"the mirror has no yolo11x-seg-640.onnx \(.*HTTP 404"):
        resolve_model("yolo11x-seg-640", mirror=mirror.url)


def test_a_file_mirror(tmp_path: Path, cache: Path, mirror: Mirror, untrained_v8_640: Path) -> None:
    """A mirror on a mounted disk (file://) works the same, checksum included."""
    mirror.sums(**{MODEL_ID: _sha256(untrained_v8_640)})
    url = (mirror.folder / "models").as_uri()
    assert resolve_model(MODEL_ID, mirror=url).read_bytes() == untrained_v8_640.read_bytes()
    with pytest.raises(ModelError, match=r"the mirror has no yolo11x-seg-640.onnx \(.*no such file"):
        resolve_model("yolo11x-seg-640", mirror=url)
    assert mirror.requests == []


def test_without_a_mirror_the_message_names_the_ways_to_get_it(cache: Path) -> None:
    with pytest.raises(ModelError) as err:
        resolve_model("yolo11s-seg-640")
    message = str(err.value)
    assert "model.mirror or $STREAMSEG_MODEL_URL" in message and str(cache) in message
    assert "yolo export model=yolo11s-seg.pt format=onnx imgsz=640" in message


def test_validate_accepts_an_id_the_mirror_serves_without_downloading(
    tmp_path: Path, mirror: Mirror, cache: Path
) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(
        f"defaults:\n  model: {{path: {MODEL_ID}, mirror: '{mirror.url}'}}\n"
        "cameras:\n  front: {source: {url: 'rtsp://127.0.0.1:8554/x'}}\n"
    )
    assert load_config(config, check_models=True).cameras["front"].model.mirror == mirror.url
    assert mirror.requests == [] and not cache.exists()
    config.write_text(config.read_text().replace(f", mirror: '{mirror.url}'", ""))
    proc = streamseg("validate", str(config))
    assert proc.returncode == 2 and "model.path" in one_line_error(proc) and MODEL_ID in proc.stderr


def test_predict_with_a_model_id_from_the_mirror(
    tmp_path: Path, mirror: Mirror, cache: Path, bus_jpg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSEG_MODEL_URL", mirror.url)
    proc = streamseg("predict", "--model", MODEL_ID, "--source", str(bus_jpg), "--conf", "0.99")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["width"] == 810
    assert (cache / f"{MODEL_ID}.onnx").is_file()
    # offline, the ID is refused in one line that says what to do
    monkeypatch.setenv("STREAMSEG_MODEL_URL", _offline_url())
    proc = streamseg("predict", "--model", "yolo11n-seg-640", "--source", str(bus_jpg))
    assert proc.returncode != 0
    assert "without network" in one_line_error(proc)


def test_a_camera_whose_model_cannot_be_downloaded_fails_alone(
    tmp_path: Path, cache: Path, fast_seg_model: Path, bikes_mp4: Path
) -> None:
    """The daemon: the camera on an unreachable mirror fails with the offline message, the other one runs."""
    url = _offline_url()
    config = tmp_path / "cameras.yaml"
    config.write_text(
        f"""
cameras:
  good:
    source: {{url: {bikes_mp4}, loop: false}}
    fps: 1
    model: {{path: {fast_seg_model}}}
    outputs: {{jsonl: {{path: out/good.jsonl}}}}
  offline:
    source: {{url: {bikes_mp4}, loop: false}}
    model: {{path: {MODEL_ID}, mirror: '{url}'}}
"""
    )
    proc = streamseg("run", str(config))
    assert proc.returncode == 1, proc.stderr  # a camera failed
    assert "Traceback" not in proc.stderr
    assert f"cannot download {url}/{MODEL_ID}.onnx" in proc.stderr and "without network" in proc.stderr
    frames = (tmp_path / "out" / "good.jsonl").read_text().splitlines()
    assert len(frames) >= 9  # 10 s at fps 1
