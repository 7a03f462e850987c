"""TritonEngine against a real Triton Inference Server (PyTriton's bundled tritonserver, serving the real model
with onnxruntime): same detections as the local engine, metadata from the server, clear errors."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg.config.model import TritonConfig
from streamseg.engines import create_engine
from streamseg.errors import EngineUnavailable, ModelError
from streamseg.models import YoloModel
from tests.mqtt_broker import free_port
from tests.triton import MODEL_NAME, TritonServer, start_server, triton_server  # noqa: F401 - a fixture

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install 'streamseg[triton]'")


def _triton(server: TritonServer, **kwargs: object) -> TritonConfig:
    return TritonConfig(url=server.url, **kwargs)


def test_detections_through_triton_equal_the_local_engine(
    triton_server: TritonServer,  # noqa: F811
    dynamic_seg_model: Path,
    bus_jpg: Path,
    zidane_jpg: Path,
) -> None:
    remote = create_engine(dynamic_seg_model, backend="triton", triton=_triton(triton_server, model_name=MODEL_NAME))
    local = create_engine(dynamic_seg_model, providers=["cpu"], threads=2)
    assert remote.name == f"triton[{MODEL_NAME}@127.0.0.1:{triton_server.port}]"
    assert remote.info.names == local.info.names and remote.info.imgsz == (320, 320)
    assert remote.info.batch == -1  # the server batches: the stage may send batches too
    for path in (bus_jpg, zidane_jpg):
        image = cv2.imread(str(path))
        ours = YoloModel(remote.info).predict(remote, image)
        theirs = YoloModel(local.info).predict(local, image)
        assert len(ours) >= 2
        assert ours.class_id.tolist() == theirs.class_id.tolist()
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=1e-3)
        np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-5)
        assert all((a == b).all() for a, b in zip(ours.mask, theirs.mask, strict=True))
    batch = np.random.default_rng(0).random((3, 3, 320, 320), dtype=np.float32)
    for a, b in zip(remote.infer(batch), local.infer(batch), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    remote.close()


def test_metadata_comes_from_the_server(triton_server: TritonServer) -> None:  # noqa: F811
    """An edge box needs no copy of the model: the name is the model's name on the server."""
    engine = create_engine(Path(MODEL_NAME), backend="triton", triton=_triton(triton_server))
    assert engine.info.names[0] == "person" and engine.info.names[79] == "toothbrush"
    assert engine.info.task == "segment" and engine.info.stride == 32
    assert engine.info.output_names == ("output0", "output1")
    engine.close()


def test_a_model_the_server_does_not_have_is_one_clear_error(triton_server: TritonServer) -> None:  # noqa: F811
    t0 = time.monotonic()
    with pytest.raises(ModelError) as err:
        create_engine(Path("yolo11x-seg"), backend="triton", triton=_triton(triton_server))
    # PyTriton restricts the repository index, so the models there cannot be listed; a full Triton lists them
    assert str(err.value) == f"Triton server grpc://127.0.0.1:{triton_server.port} has no model 'yolo11x-seg'"
    assert time.monotonic() - t0 < 5, "a model that is not there is reported at once, not after the timeout"


def test_no_server_is_one_clear_error_after_the_timeout() -> None:
    port = free_port()
    with pytest.raises(ModelError) as err:
        create_engine(Path(MODEL_NAME), backend="triton", triton=TritonConfig(url=f"127.0.0.1:{port}", timeout=1))
    assert str(err.value).startswith(f"cannot reach the Triton server at grpc://127.0.0.1:{port}: ")
    assert "\n" not in str(err.value)


def test_a_server_outage_is_unavailable_then_recovers(dynamic_seg_model: Path) -> None:
    """Killed mid-run: calls raise EngineUnavailable (the cameras' cue to go reconnecting), and work again once
    the server is back on the same port."""
    server = start_server(dynamic_seg_model)
    try:
        engine = create_engine(
            dynamic_seg_model, backend="triton", triton=_triton(server, model_name=MODEL_NAME, timeout=5)
        )
        frame = np.zeros((1, 3, 320, 320), np.float32)
        expected = engine.infer(frame)
        server.kill()
        with pytest.raises(EngineUnavailable, match=f"Triton server grpc://127.0.0.1:{server.port} unavailable"):
            engine.infer(frame)
        server.start()
        np.testing.assert_allclose(engine.infer(frame)[0], expected[0], atol=1e-5)
        engine.close()
    finally:
        server.kill()
