"""Triton Inference Server backend (`backend: triton`): the network runs on a shared server, over gRPC.

For deployments that outgrow one box: each edge daemon decodes, preprocesses, decodes masks, tracks and
publishes; inference goes to a Triton pool that batches the requests of every daemon. Each stage worker has
its own TritonEngine, so `workers` requests are in flight at once (4 by default).

The model's inputs, outputs and batch limit come from the server. The Ultralytics metadata (class names, input
size, stride, task) comes from the model config's `metadata` parameter when the server has one (Ultralytics'
Triton convention: `parameters { key: "metadata" value { string_value: "<JSON>" } }`), else from the local model
file at `model.path` when there is one.

A server that cannot be reached while the daemon runs raises EngineUnavailable: the cameras go `reconnecting`
and resend their frames until it is back. tritonclient is an optional extra (`pip install 'streamseg[triton]'`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.config.model import TritonConfig
from streamseg.engines.base import Engine, ModelInfo
from streamseg.engines.metadata import _parse_value, build_model_info
from streamseg.errors import EngineUnavailable, ModelError

if TYPE_CHECKING:
    from streamseg.engines import EngineOptions

log = logging.getLogger(__name__)

# gRPC statuses that mean "not now" rather than "never": the server is down, restarting (its model not loaded
# yet), overloaded or too slow. Anything else (a bad request, a model error) fails the frame.
TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "NOT_FOUND", "RESOURCE_EXHAUSTED", "CANCELLED"}
OPEN_POLL_S = 0.5


def open_engine(path: Path, options: EngineOptions) -> Engine:
    return TritonEngine(path, options.triton)


def read_info(path: Path) -> ModelInfo:
    raise ModelError(f"{path}: a Triton model's details come from the server (open it with backend: triton)")


def _import_client() -> tuple[Any, Any]:
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise ModelError("backend: triton needs tritonclient: pip install 'streamseg[triton]'") from None
    return grpcclient, InferenceServerException


def _status(exc: Exception) -> str:
    """'UNAVAILABLE' from tritonclient's 'StatusCode.UNAVAILABLE' (None when the error has no gRPC status)."""
    status = exc.status() if hasattr(exc, "status") else None
    return str(status or "").rsplit(".", 1)[-1]


def _reason(exc: Exception) -> str:
    text = exc.message() if hasattr(exc, "message") else str(exc)
    return " ".join(str(text).split())[:200]


class TritonEngine(Engine):
    """One worker's gRPC client to the model on a Triton server; one request in flight per engine."""

    def __init__(self, path: Path, cfg: TritonConfig) -> None:
        self._grpc, self._error = _import_client()
        self.cfg = cfg
        self.address = cfg.url.removeprefix("grpc://")
        self.url = f"grpc://{self.address}"
        self.model = cfg.model_name or Path(path).stem
        self.name = f"triton[{self.model}@{self.address}]"
        self.device = "triton"
        self._client = self._connect()
        config, meta = self._wait_for_model()
        self.info = self._info(path, config, meta)
        self._max_batch = int(config.get("max_batch_size") or 0)
        self._dtype = self._grpc_dtype(meta["inputs"][0]["datatype"])
        self._datatype = meta["inputs"][0]["datatype"]

    # -- opening ---------------------------------------------------------------------------------------
    def _connect(self) -> Any:
        return self._grpc.InferenceServerClient(self.address)

    def _wait_for_model(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model's config and metadata, once the server says it is ready; waits up to `timeout` for a server
        that is starting (a compose file starts the daemons and Triton together)."""
        deadline = time.monotonic() + self.cfg.timeout
        version = self.cfg.model_version
        while True:
            try:
                if self._client.is_model_ready(self.model, version, client_timeout=self.cfg.timeout):
                    config = self._client.get_model_config(self.model, version, as_json=True)["config"]
                    meta = self._client.get_model_metadata(self.model, version, as_json=True)
                    return config, meta
                problem, absent = self._missing()
            except self._error as exc:
                status = _status(exc)
                if status == "NOT_FOUND":
                    problem, absent = self._missing()
                elif status in TRANSIENT:
                    problem, absent = f"cannot reach the Triton server at {self.url}: {_reason(exc)}", False
                else:
                    raise ModelError(f"Triton server {self.url}, model {self.model!r}: {_reason(exc)}") from None
            if absent:  # the server is up and has no such model: waiting will not bring it
                raise ModelError(problem)
            if time.monotonic() >= deadline:
                raise ModelError(problem)
            time.sleep(OPEN_POLL_S)

    def _missing(self) -> tuple[str, bool]:
        """Why the model is not ready, and whether it is absent from the server (rather than still loading).

        The repository index lists the models there; servers that restrict that API (PyTriton does) still say
        NOT_FOUND, "... is not found", for a model they do not have."""
        try:
            index = self._client.get_model_repository_index(as_json=True).get("models", [])
        except self._error:
            try:
                self._client.get_model_metadata(self.model, self.cfg.model_version)
            except self._error as exc:
                if _status(exc) == "NOT_FOUND" and "not found" in _reason(exc):
                    return f"Triton server {self.url} has no model {self.model!r}", True
            return f"Triton server {self.url}: model {self.model!r} is not ready", False
        names = sorted({m.get("name", "") for m in index} - {""})
        if self.model not in names:
            there = ", ".join(names) if names else "none"
            return f"Triton server {self.url} has no model {self.model!r} (models there: {there})", True
        state = next((m.get("state") or "not ready" for m in index if m.get("name") == self.model), "not ready")
        return f"Triton server {self.url}: model {self.model!r} is {state.lower()}", False

    def _info(self, path: Path, config: dict[str, Any], meta: dict[str, Any]) -> ModelInfo:
        if len(meta.get("inputs", [])) != 1:
            raise ModelError(f"Triton model {self.model!r} has {len(meta.get('inputs', []))} inputs, expected 1")
        ultralytics = self._ultralytics_metadata(path, config)
        inp = meta["inputs"][0]
        outputs = meta.get("outputs", [])
        batching = int(config.get("max_batch_size") or 0) > 0
        shape = [int(d) for d in inp["shape"]]
        if batching and shape and shape[0] > 0:  # a batching model's first axis is the batch, whatever it says
            shape[0] = -1
        return build_model_info(
            path,
            ultralytics,
            input_name=inp["name"],
            input_shape=shape,
            input_dtype=self._grpc_dtype(inp["datatype"]),
            output_names=[o["name"] for o in outputs],
            output_shapes=[[int(d) for d in o["shape"]] for o in outputs],
        )

    def _ultralytics_metadata(self, path: Path, config: dict[str, Any]) -> dict[str, Any]:
        raw = ((config.get("parameters") or {}).get("metadata") or {}).get("string_value")
        if raw:
            meta = _parse_value(raw)
            if isinstance(meta, dict):
                return meta
            log.warning("Triton model %r: its metadata parameter is not a JSON object; ignored", self.model)
        if Path(path).is_file():
            from streamseg.engines import read_model_info

            info = read_model_info(path)
            meta = {"names": info.names, "imgsz": list(info.imgsz), "stride": info.stride, "task": info.task}
            return meta | ({"kpt_shape": list(info.kpt_shape)} if info.kpt_shape else {})
        log.warning(
            "Triton model %r has no metadata parameter and %s is not a local file: class names and input size "
            "are guessed from the shapes",
            self.model,
            path,
        )
        return {}

    def _grpc_dtype(self, datatype: str) -> np.dtype:
        from tritonclient.utils import triton_to_np_dtype

        dtype = triton_to_np_dtype(datatype)
        if dtype is None:
            raise ModelError(f"Triton model {self.model!r}: input type {datatype} is not supported")
        return np.dtype(dtype)

    # -- running ---------------------------------------------------------------------------------------
    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        if self._max_batch and len(images) > self._max_batch:  # the server's limit: send it in parts
            parts = [self.infer(images[i : i + self._max_batch]) for i in range(0, len(images), self._max_batch)]
            return [np.concatenate(outs) for outs in zip(*parts, strict=True)]
        grpc = self._grpc
        request = grpc.InferInput(self.info.input_name, list(images.shape), self._datatype)
        request.set_data_from_numpy(np.ascontiguousarray(images, dtype=self._dtype))
        wanted = [grpc.InferRequestedOutput(name) for name in self.info.output_names]
        try:
            result = self._client.infer(
                self.model,
                [request],
                model_version=self.cfg.model_version,
                outputs=wanted,
                client_timeout=self.cfg.timeout,
            )
        except self._error as exc:
            if _status(exc) in TRANSIENT:
                # A fresh channel next time: gRPC's own reconnect backoff grows to minutes while a server is down.
                self._client.close()
                self._client = self._connect()
                raise EngineUnavailable(f"Triton server {self.url} unavailable: {_reason(exc)}") from None
            raise RuntimeError(f"Triton model {self.model!r} failed: {_reason(exc)}") from None
        return [result.as_numpy(name) for name in self.info.output_names]

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()
