"""Static int8 (QDQ) quantization of an ONNX YOLO model for CPUs, calibrated on the user's own frames.

onnxruntime's tools do the work: `quant_pre_process` (shape inference, and the graph optimizations that fold each
Conv's bias Add into the Conv), then `quantize_static` with QuantFormat.QDQ, per-channel int8 weights, uint8
activations, and percentile calibration (MinMax let a few outliers stretch the activation ranges: class scores of
small objects drifted by up to 0.35 on bikes.mp4; percentile kept them within ~0.1).

The output head stays in float (`float_head_nodes`): the decode after the last learned convolutions (DFL softmax
and its fixed 1x1 conv, anchor arithmetic, the score sigmoid, the final Concat of boxes, scores and mask
coefficients) and the prototype output's activation. Quantized, one uint8 scale serves box coordinates in pixels
and scores in 0..1 at once, and every class score came out as the same value (1.5 was measured; 0.0 here with
percentile calibration). The head's box and class branches (two small conv stacks per scale) stay float too,
unless `float_branches=False` (`--float-head decode`): what each choice cost and gave is measured in
docs/models.md.

Needs the `onnx` package (`pip install 'streamseg[export]'`); onnxruntime is always installed.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ModelError

log = logging.getLogger(__name__)

QDQ_CALIB_FRAMES = 100  # frames spread over the calibration video / folder
ACTIVATIONS = ("Mul", "Sigmoid", "Relu", "LeakyRelu", "HardSwish", "HardSigmoid", "Elu", "Clip")


def import_quantization(what: str) -> Any:
    """onnxruntime.quantization (which needs the onnx package), or ModelError naming the extra."""
    try:
        import onnx  # noqa: F401 - onnxruntime.quantization imports it
        from onnxruntime import quantization
    except ImportError as exc:
        raise ModelError(
            f"{what} needs the onnx package ({exc.name or exc} is not installed): pip install 'streamseg[export]'"
        ) from None
    return quantization


def float_head_nodes(model: Any, *, branches: bool = True) -> list[str]:
    """Names of the nodes that stay float: the decode (every node between a graph output and the last learned Conv
    of its branch, walking through the DFL's fixed-weight conv) and Ultralytics' box and class branches (`cv2.*`,
    `cv3.*` of the head module that makes output0; `branches=False` quantizes them: faster, less faithful). The
    mask-coefficient branch, the prototypes, the backbone and the neck are quantized."""
    producer = {out: node for node in model.graph.node for out in node.output}
    keep: dict[str, None] = {}
    stack = [producer[o.name] for o in model.graph.output if o.name in producer]
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        if node.op_type == "Conv":
            feeder = producer.get(node.input[0])
            if feeder is None or feeder.op_type in ACTIVATIONS:
                continue  # a learned layer: the walk ends here
        keep[node.name] = None
        stack += [producer[i] for i in node.input if i in producer]
    if not branches:
        return sorted(keep)
    head = producer.get(model.graph.output[0].name) if model.graph.output else None
    prefix = head.name.rsplit("/", 1)[0] + "/" if head is not None and "/" in head.name else None
    branches = [n.name for n in model.graph.node if prefix and n.name.startswith((f"{prefix}cv2.", f"{prefix}cv3."))]
    if not branches:
        log.warning("no Ultralytics box/class branches (cv2.*, cv3.*) found in the head: only the decode stays float")
    return sorted({*keep, *branches})


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    calib_frames: int
    float_nodes: list[str]


def quantize_qdq(
    onnx_path: Path, calib: Path, out: Path, *, frames: int = QDQ_CALIB_FRAMES, float_branches: bool = True
) -> QuantizeResult:
    """Write a QDQ int8 copy of `onnx_path` to `out`, calibrated on up to `frames` frames of `calib`.

    float_branches: keep the head's box and class branches float (see float_head_nodes)."""
    quantization = import_quantization(f"int8 quantization of {onnx_path}")
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from streamseg.engines import read_model_info
    from streamseg.engines.tensorrt_build import calibration_frames

    onnx_path, out = Path(onnx_path), Path(out)
    info = read_model_info(onnx_path)
    if info.batch not in (1, -1):
        raise ModelError(
            f"{onnx_path}: int8 calibration needs a batch-1 or dynamic-batch model, not batch {info.batch}"
        )
    tensors = [t[None] for t in calibration_frames(Path(calib), info.imgsz, limit=max(1, frames))]
    if not tensors:
        raise ModelError(f"int8 calibration: no frames could be read from {calib}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="streamseg-qdq-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(onnx_path), str(prepared))
        except Exception as exc:  # onnx / shape inference raise many types
            raise ModelError(
                f"cannot prepare {onnx_path} for quantization: {' '.join(str(exc).split())[:200]}"
            ) from None
        model = onnx.load(str(prepared))
        head = float_head_nodes(model, branches=float_branches)
        log.info(
            "int8 calibration of %s on %d frames of %s; %d head nodes stay float",
            onnx_path.name,
            len(tensors),
            calib,
            len(head),
        )
        reader = _Frames(info.input_name, tensors)
        with contextlib.redirect_stdout(sys.stderr):  # its calibrator prints progress; stdout is for our report
            quantization.quantize_static(
                str(prepared),
                str(out),
                reader,
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.Percentile,
                nodes_to_exclude=head,
            )
    _copy_metadata(onnx_path, out)
    check_scores(out, tensors[0])
    return QuantizeResult(out, len(tensors), head)


class _Frames:
    """onnxruntime's CalibrationDataReader protocol: get_next() -> {input name: tensor} until None."""

    def __init__(self, input_name: str, tensors: list[np.ndarray]) -> None:
        self.input_name = input_name
        self._it: Iterator[np.ndarray] = iter(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self._it, None)
        return None if tensor is None else {self.input_name: tensor}


def _copy_metadata(src: Path, dst: Path) -> None:
    """The Ultralytics metadata (names, imgsz, task, stride) onto the quantized file, so it decodes the same way."""
    import onnx

    source, model = onnx.load(str(src)), onnx.load(str(dst))
    have = {p.key for p in model.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in have:
            model.metadata_props.append(prop)
    entry = next((p for p in model.metadata_props if p.key == "quantization"), None) or model.metadata_props.add()
    entry.key, entry.value = "quantization", "int8 QDQ (streamseg export --int8)"
    onnx.save(model, str(dst))


def check_scores(path: Path, tensor: np.ndarray) -> None:
    """Refuse a quantized model whose class scores are not probabilities or do not vary (a quantized head)."""
    from streamseg.engines import create_engine

    with create_engine(path, providers=["cpu"]) as engine:
        pred = engine.infer(tensor)[0][0]  # 4 box values, the class scores, then mask coefficients / keypoints
        scores = pred[4 : 4 + len(engine.info.names)]
    low, high, spread = float(scores.min()), float(scores.max()), float(scores.std())
    if low < -1e-3 or high > 1 + 1e-3 or spread < 1e-4:
        raise ModelError(
            f"quantized model {path} gives class scores from {low:.3f} to {high:.3f} (std {spread:.4f}): "
            "not probabilities; its output head was quantized"
        )


def compare_speed(a: Any, b: Any, tensor: np.ndarray, *, calls: int = 20, rounds: int = 3) -> tuple[float, float]:
    """Medians over `rounds` of the mean milliseconds of one raw forward pass of engines `a` and `b`, measured in
    alternating rounds (after a warm-up) so that both see the same load on the machine."""
    for engine in (a, b):
        for _ in range(3):
            engine.infer(tensor)
    means: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for engine, out in zip((a, b), means, strict=True):
            t0 = time.perf_counter()
            for _ in range(calls):
                engine.infer(tensor)
            out.append(1000 * (time.perf_counter() - t0) / calls)
    return statistics.median(means[0]), statistics.median(means[1])
