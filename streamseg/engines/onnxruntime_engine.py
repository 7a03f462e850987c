"""onnxruntime engine: CPU, CUDA or TensorRT execution providers.

On a GPU provider the engine runs through IO binding: the input goes into a device buffer kept from call to call
and the outputs are allocated on the device by onnxruntime, then copied back once, so no call allocates device
memory for its input or makes onnxruntime copy through its own staging buffers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from streamseg.config.model import TensorRTConfig
from streamseg.engines.base import Engine, ModelInfo, gpu_index
from streamseg.engines.metadata import build_model_info
from streamseg.errors import ModelError
from streamseg.vocab import Precision

if TYPE_CHECKING:
    from streamseg.engines import EngineOptions

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


def open_engine(path: Path, options: EngineOptions) -> Engine:
    return OnnxRuntimeEngine(
        path,
        providers=list(options.providers) if options.providers else None,
        device=options.device,
        threads=options.threads,
        spin=options.spin,
        tensorrt=options.tensorrt,
    )


def read_info(path: Path) -> ModelInfo:
    with OnnxRuntimeEngine(path, providers=["cpu"], threads=1) as engine:
        return engine.info


def provider_options(name: str, device: int, tensorrt: TensorRTConfig) -> dict[str, str]:
    """Options of one execution provider: the GPU index, and for TensorRT the precision and the engine cache.

    The TensorRT provider builds its engines when the session opens (minutes on a Jetson): its engine and timing
    caches make every later start take seconds. int8 here means a QDQ model (`streamseg export --int8`), which
    TensorRT runs without a calibration table.
    """
    if name == PROVIDERS["cpu"]:
        return {}
    options = {"device_id": str(device)}
    if name == PROVIDERS["tensorrt"]:
        from streamseg.engines.tensorrt_build import default_cache_dir

        cache = Path(tensorrt.cache_dir) if tensorrt.cache_dir else default_cache_dir()
        cache = cache / "onnxruntime"
        os.makedirs(cache, exist_ok=True)
        low = tensorrt.precision in (Precision.FP16, Precision.INT8)
        options |= {
            "trt_fp16_enable": str(low),
            "trt_int8_enable": str(tensorrt.precision == Precision.INT8),
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
        }
    return options


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
        tensorrt: TensorRTConfig | None = None,
        io_binding: bool | None = None,
    ) -> None:
        """spin: let idle intra-op threads busy-wait for the next call (onnxruntime's default). Sessions that
        share cores (several workers) must not: they would burn the cores the others compute on.
        io_binding: run through IO binding (None: on a GPU provider only)."""
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
        gpu = gpu_index(device)
        per_provider = [provider_options(ep, gpu, tensorrt or TensorRTConfig()) for ep in names]
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=names, provider_options=per_provider
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
        use_binding = self.device != "cpu" if io_binding is None else io_binding
        self._binding = _IoBinding(self.session, self.info, gpu) if use_binding else None

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        if images.dtype != self._input_dtype:  # e.g. float16 graphs: cast once here
            images = images.astype(self._input_dtype)
        if self._binding is not None:
            return self._binding.run(images)
        return self.session.run(self._output_names, {self._input_name: images})

    def close(self) -> None:
        self._binding = None
        self.session = None  # type: ignore[assignment]


class _IoBinding:
    """The session's input in a device buffer reused from call to call (one per batch size), its outputs bound to
    the device and copied back once."""

    def __init__(self, session: ort.InferenceSession, info: ModelInfo, gpu: int) -> None:
        self.session = session
        self.info = info
        first = session.get_providers()[0]
        self.device_type = "cpu" if first == PROVIDERS["cpu"] else "cuda"
        self.gpu = gpu
        self.binding = session.io_binding()
        self.inputs: dict[tuple[int, ...], Any] = {}  # shape -> OrtValue on the device

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        shape = tuple(images.shape)
        value = self.inputs.get(shape)
        if value is None:
            value = self.inputs[shape] = ort.OrtValue.ortvalue_from_shape_and_type(
                shape, images.dtype, self.device_type, self.gpu
            )
        value.update_inplace(np.ascontiguousarray(images))  # the host -> device copy
        binding = self.binding
        binding.bind_ortvalue_input(self.info.input_name, value)
        for name in self.info.output_names:
            binding.bind_output(name, self.device_type, self.gpu)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


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
