"""Run what this machine's NVIDIA GPU can run and print one table (tools/gpu_check.sh is the command).

    python tools/gpu_check.py [--onnx MODEL.onnx] [--torchscript MODEL.torchscript] [--frames 200]

Rows: TorchScript on CUDA with 1 and 2 workers in flight (frames/s through an inference stage), host-to-device
copies from pinned against pageable memory (GB/s), onnxruntime's CUDA and TensorRT providers, and native
TensorRT with 1 and 2 workers. A row that cannot run here says why (no GPU, no torch with CUDA, no
onnxruntime-gpu, no tensorrt/pycuda). The TensorRT rows build (and cache) an engine first: minutes on a Jetson.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamseg.engines import create_engine  # noqa: E402
from streamseg.errors import StreamsegError  # noqa: E402
from streamseg.inference.stage import InferenceStage  # noqa: E402

SHARED = Path(os.environ.get("STREAMSEG_SHARED", REPO.parent / "shared"))
Row = tuple[str, str, str]  # check, result, note


class Skip(Exception):
    """This check cannot run here; the message says why."""


def stage_fps(open_engine: Callable[[], object], workers: int, frames: int) -> float:
    """Frames/s through an inference stage with `workers` engines, enough frames in flight to keep them busy."""
    engines = [open_engine() for _ in range(workers)]
    stage = InferenceStage(engines).start()
    try:
        shape = (1, 3, *engines[0].info.imgsz)
        tensors = [stage.allocate(shape, np.float32) for _ in range(stage.depth)]
        for t in tensors:
            t[...] = np.random.default_rng(0).random(shape, dtype=np.float32)
        for f in [stage.submit(t) for t in tensors]:
            f.result()  # warm-up
        pending = []
        t0 = time.perf_counter()
        for i in range(frames):
            if len(pending) >= stage.depth:
                pending.pop(0).result()
            pending.append(stage.submit(tensors[i % len(tensors)]))
        for f in pending:
            f.result()
        return frames / (time.perf_counter() - t0)
    finally:
        stage.close()


def torch_cuda() -> object:
    try:
        import torch
    except ImportError:
        raise Skip("torch is not installed (pip install 'streamseg[torch]')") from None
    if not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} has no CUDA device")
    return torch


def check_torchscript(model: Path | None, frames: int) -> list[Row]:
    torch_cuda()
    if model is None or not model.is_file():
        raise Skip("no .torchscript model (--torchscript)")
    rows = []
    for workers in (1, 2):
        fps = stage_fps(lambda: create_engine(model, device="cuda"), workers, frames)
        rows.append((f"TorchScript CUDA, {workers} worker(s)", f"{fps:.1f} frames/s", model.name))
    return rows


def check_copies() -> list[Row]:
    torch = torch_cuda()
    size = (8, 3, 640, 640)
    stream = torch.cuda.Stream()
    rows = []
    for label, pinned in (("pinned", True), ("pageable", False)):
        host = torch.rand(size).pin_memory() if pinned else torch.rand(size)
        device = torch.empty(size, device="cuda")
        with torch.cuda.stream(stream):
            device.copy_(host, non_blocking=True)
        stream.synchronize()
        t0 = time.perf_counter()
        n = 50
        with torch.cuda.stream(stream):
            for _ in range(n):
                device.copy_(host, non_blocking=True)
        stream.synchronize()
        rate = n * host.numel() * 4 / (time.perf_counter() - t0) / 1e9
        rows.append((f"host->device copy, {label}", f"{rate:.2f} GB/s", "8x3x640x640 float32"))
    return rows


def check_onnxruntime(model: Path | None, frames: int) -> list[Row]:
    import onnxruntime as ort

    if model is None or not model.is_file():
        raise Skip("no .onnx model (--onnx)")
    available = ort.get_available_providers()
    rows = []
    for short, name in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        if name not in available:
            rows.append((f"onnxruntime {short}", "skipped", f"{name} not available (pip install 'streamseg[gpu]')"))
            continue
        fps = stage_fps(lambda s=short: create_engine(model, providers=[s], device="cuda"), 2, frames)
        rows.append((f"onnxruntime {short}, 2 workers", f"{fps:.1f} frames/s", model.name))
    return rows


def check_tensorrt(model: Path | None, frames: int) -> list[Row]:
    try:
        import tensorrt  # isort: skip - TensorRT first: its absence is the likelier one to report
        import pycuda.driver  # noqa: F401
    except ImportError as exc:
        raise Skip(f"{exc.name} is not installed (pip install 'streamseg[tensorrt]')") from None
    if model is None or not model.is_file():
        raise Skip("no .onnx model (--onnx)")
    rows = []
    for workers in (1, 2):
        fps = stage_fps(lambda w=workers: create_engine(model, backend="tensorrt", contexts=w), workers, frames)
        rows.append((f"TensorRT {tensorrt.__version__} fp16, {workers} worker(s)", f"{fps:.1f} frames/s", model.name))
    return rows


def run(check: Callable[[], list[Row]], name: str) -> list[Row]:
    try:
        return check()
    except Skip as why:
        return [(name, "skipped", str(why))]
    except (StreamsegError, RuntimeError, OSError) as exc:
        return [(name, "failed", " ".join(str(exc).split())[:160])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=SHARED / "models" / "yolov8n-seg-320-dynamic.onnx")
    parser.add_argument("--torchscript", type=Path, default=SHARED / "models" / "yolov8n-seg-320.torchscript")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args(argv)
    smi = shutil.which("nvidia-smi")
    gpu = os.popen(f"{smi} --query-gpu=name,driver_version --format=csv,noheader").read().strip() if smi else ""
    rows: list[Row] = [("GPU", gpu or "none", "nvidia-smi" if smi else "nvidia-smi not found")]
    rows += run(lambda: check_torchscript(args.torchscript, args.frames), "TorchScript CUDA")
    rows += run(check_copies, "host->device copies")
    rows += run(lambda: check_onnxruntime(args.onnx, args.frames), "onnxruntime GPU providers")
    rows += run(lambda: check_tensorrt(args.onnx, args.frames), "TensorRT")
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in [("check", "result", "note"), tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
