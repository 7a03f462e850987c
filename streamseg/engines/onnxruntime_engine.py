"""onnxruntime engine: CPU, CUDA or TensorRT execution providers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from streamseg.engines.base import Engine, ModelInfo
from streamseg.engines.metadata import build_model_info
from streamseg.errors import ModelError

log = logging.getLogger(__name__)

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def select_providers(requested: list[str] | None, available: list[str] | None = None) -> list[str]:
    """Map short names to onnxruntime EPs in the user's order; warn once for each one not available.

    None picks every available EP in the order tensorrt, cuda, cpu. CPU always ends the list so a
    session can always be created.
    """
    available = ort.get_available_providers() if available is None else available
    if requested is None:
        chosen = [ep for ep in PROVIDERS.values() if ep in available]
    else:
        chosen = []
        for short in requested:
            ep = PROVIDERS.get(short.lower())
            if ep is None:
                raise ModelError(f"unknown provider {short!r}: choose from {', '.join(PROVIDERS)}")
            if ep in available:
                chosen.append(ep)
            else:
                log.warning("onnxruntime provider %r (%s) is not available here; falling back", short, ep)
    if PROVIDERS["cpu"] not in chosen:
        chosen.append(PROVIDERS["cpu"])
    return list(dict.fromkeys(chosen))


def _session_error(path: Path, err: Exception) -> ModelError:
    text = " ".join(str(err).split())
    if "ConvInteger" in text and "Could not find an implementation" in text:
        return ModelError(
            f"cannot load model {path}: this int8 model needs onnxruntime >= 1.23 "
            f"(installed: {ort.__version__}, no ConvInteger kernel)"
        )
    if "protobuf" in text.lower() or "INVALID_PROTOBUF" in text:
        return ModelError(f"cannot load model {path}: not an ONNX file")
    return ModelError(f"cannot load model {path}: {text[:300]}")


class OnnxRuntimeEngine(Engine):
    def __init__(
        self,
        path: Path,
        *,
        providers: list[str] | None = None,
        device: str = "auto",
        threads: int | None = None,
        spin: bool = True,
    ) -> None:
        """spin: let idle intra-op threads busy-wait for the next call (onnxruntime's default). Sessions that
        share cores (several workers) must not: they would burn the cores the others compute on."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # onnxruntime logs to stderr at WARNING by default; errors still raise.
        options.log_severity_level = 3
        chosen = ["cpu"] if device == "cpu" else providers
        names = select_providers(chosen)
        gpu = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
        # The GPU providers take the device index; the CPU provider takes no options.
        provider_options = [{} if ep == PROVIDERS["cpu"] else {"device_id": str(gpu)} for ep in names]
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=names, provider_options=provider_options
            )
        except Exception as err:  # onnxruntime raises several unrelated exception types
            raise _session_error(path, err) from None
        self.info = _read_info(path, self.session)
        first = self.session.get_providers()[0]
        self.name = f"onnxruntime[{first}]"
        self.device = "cpu" if first == PROVIDERS["cpu"] else f"cuda:{gpu}"
        self.threads = threads  # intra-op threads asked for (None: onnxruntime's default)
        self._input_name = self.info.input_name
        self._input_dtype = self.info.input_dtype
        self._output_names = list(self.info.output_names)

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        if images.dtype != self._input_dtype:  # e.g. float16 graphs: cast once here
            images = images.astype(self._input_dtype)
        return self.session.run(self._output_names, {self._input_name: images})

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def _read_info(path: Path, session: ort.InferenceSession) -> ModelInfo:
    inp = session.get_inputs()[0]
    outputs = session.get_outputs()
    return build_model_info(
        path,
        session.get_modelmeta().custom_metadata_map,
        input_name=inp.name,
        input_shape=inp.shape,
        input_dtype=_ORT_DTYPES.get(inp.type, np.float32),
        output_names=[o.name for o in outputs],
        output_shapes=[o.shape for o in outputs],
    )
