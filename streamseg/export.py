"""`streamseg export`: a model in another form, for the machine it will run on.

- `--format onnx --int8 --calib VIDEO_OR_DIR` on an .onnx model: a static int8 (QDQ) ONNX for CPUs
  (streamseg/quantize.py), then its speed and its agreement with the float model on the calibration frames.
- `--format engine` on an .onnx model: a TensorRT engine, built (or found) in the engine cache by
  streamseg/engines/tensorrt_build.py, the same code and cache key the daemon uses; `--out` also copies it there.
- `--format onnx|torchscript|engine` on an Ultralytics `.pt` checkpoint: Ultralytics' own exporter (the optional
  `[ultralytics]` extra), then the steps above for `--int8` / `engine`.

Precision flags follow Ultralytics: `--half` fp16, `--int8` int8, neither fp32. The daemon's TensorRT engines are
fp16 by default, so `--format engine --half` prebuilds exactly the engine it will open.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from streamseg.errors import ModelError, StreamsegError
from streamseg.vocab import ExportFormat, Precision

AGREEMENT_FRAMES = 20  # calibration frames the quantized model's agreement with the float model is measured on


def export(args: argparse.Namespace) -> int:
    fmt = ExportFormat(args.format)
    if args.half and args.int8:
        raise StreamsegError("--half and --int8: choose one precision")
    if args.int8 and args.calib is None:
        raise StreamsegError("--int8 needs --calib VIDEO_OR_DIR: frames from your own camera or video to calibrate on")
    if args.int8 and not args.calib.exists():
        raise StreamsegError(f"--calib {args.calib}: no such file or folder")
    source = _model_path(args.model)
    if source.suffix.lower() == ".pt":
        source = ultralytics_export(
            source,
            ExportFormat.ONNX if args.int8 or fmt == ExportFormat.ENGINE else fmt,
            half=args.half and fmt != ExportFormat.ENGINE,
            imgsz=args.imgsz,
            out=None if args.int8 or fmt == ExportFormat.ENGINE else args.out,
        )
        if fmt != ExportFormat.ENGINE and not args.int8:
            print(f"exported {source}")
            return 0
    if source.suffix.lower() != ".onnx":
        raise ModelError(f"export --format {fmt} from {source}: needs an .onnx model or Ultralytics .pt weights")
    if fmt == ExportFormat.ENGINE:
        return _engine(source, args)
    if fmt == ExportFormat.TORCHSCRIPT:
        raise ModelError(f"export --format torchscript from {source}: TorchScript is exported from the .pt weights")
    if not args.int8:
        raise StreamsegError(f"{source} is already ONNX: add --int8 --calib VIDEO_OR_DIR to quantize it")
    return _qdq(source, args)


def _model_path(spec: str) -> Path:
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".pt":
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path.resolve()
    from streamseg.models.registry import resolve_model

    return resolve_model(spec)


def _engine(onnx: Path, args: argparse.Namespace) -> int:
    from streamseg.engines.tensorrt_build import build_engine

    precision = Precision.INT8 if args.int8 else Precision.FP16 if args.half else Precision.FP32
    path = build_engine(onnx, precision=precision, max_batch=args.batch, calib=args.calib, out=args.out)
    print(f"TensorRT engine ({precision}, batch up to {args.batch}): {path}")
    return 0


def _qdq(onnx: Path, args: argparse.Namespace) -> int:
    from streamseg.engines import create_engine
    from streamseg.engines.tensorrt_build import calibration_images
    from streamseg.models.letterbox import letterbox
    from streamseg.quantize import compare_speed, quantize_qdq
    from streamseg.val import agreement

    out = Path(args.out) if args.out else onnx.with_name(f"{onnx.stem}-int8-qdq.onnx")
    if out.resolve() == onnx.resolve():
        raise StreamsegError(f"--out {out}: would overwrite the float model")
    result = quantize_qdq(onnx, args.calib, out, frames=args.calib_frames, float_branches=args.float_head == "branches")
    print(f"int8 QDQ model: {out} (calibrated on {result.calib_frames} frames of {args.calib})")
    images = list(calibration_images(args.calib, limit=min(AGREEMENT_FRAMES, args.calib_frames)))
    with create_engine(onnx, providers=["cpu"]) as fp32, create_engine(out, providers=["cpu"]) as int8:
        tensor = letterbox(images[0], fp32.info.imgsz)[0]
        fp32_ms, int8_ms = compare_speed(fp32, int8, tensor)
        print(
            f"speed (raw forward, median of 3): fp32 {fp32_ms:.1f} ms, int8 QDQ {int8_ms:.1f} ms "
            f"({fp32_ms / int8_ms:.2f}x)"
        )
        report = agreement(fp32, int8, images)
    box = report.box
    line = f"agreement with the fp32 model on {len(images)} frames: box mAP50-95 {box.map:.3f} (mAP50 {box.map50:.3f})"
    if report.mask is not None:
        line += f", mask mAP50-95 {report.mask.map:.3f} (mAP50 {report.mask.map50:.3f})"
    print(line)
    return 0


def ultralytics_export(pt: Path, fmt: str, *, half: bool, imgsz: int | None, out: Path | None) -> Path:
    """Ultralytics' exporter on a .pt checkpoint; the exported file (moved to `out` when given)."""
    try:
        from ultralytics import YOLO
    except ImportError:
        raise ModelError(
            f"export --format {fmt} from {pt.name} needs Ultralytics, which is not installed: "
            "pip install 'streamseg[ultralytics]' (or export with `yolo export`)"
        ) from None
    kwargs: dict[str, object] = {"format": str(fmt), "half": half}
    if imgsz is not None:
        kwargs["imgsz"] = imgsz
    try:
        exported = Path(YOLO(str(pt)).export(**kwargs))
    except Exception as exc:  # Ultralytics raises many types
        raise ModelError(f"Ultralytics could not export {pt} to {fmt}: {' '.join(str(exc).split())[:200]}") from None
    if out is None:
        return exported
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(exported), out)
    return out
