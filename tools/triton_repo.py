"""Put an Ultralytics ONNX export into a Triton model repository, for `backend: triton`.

    python tools/triton_repo.py MODEL.onnx REPO [--name yolov8n-seg] [--max-batch 16] [--fp16] [--cpu]

writes REPO/NAME/1/model.onnx and REPO/NAME/config.pbtxt: the onnxruntime backend, dynamic batching (when the
ONNX batch axis is dynamic), a GPU instance group with TensorRT acceleration (fp16 with --fp16), and the
Ultralytics metadata (names, imgsz, stride, task) as the `metadata` parameter, where streamseg reads it, so the
edge daemons need no copy of the model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import onnxruntime as ort

KEYS = ("names", "imgsz", "stride", "task", "batch", "description", "version")


def config_text(name: str, onnx: Path, max_batch: int, fp16: bool, cpu: bool) -> str:
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    dynamic = not isinstance(session.get_inputs()[0].shape[0], int)
    metadata = json.dumps({k: meta[k] for k in KEYS if k in meta})
    lines = [
        f'name: "{name}"',
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch if dynamic else 0}",
    ]
    if dynamic:
        lines.append("dynamic_batching { max_queue_delay_microseconds: 2000 }")
    lines.append(f"instance_group [ {{ count: 1, kind: {'KIND_CPU' if cpu else 'KIND_GPU'} }} ]")
    if not cpu:
        precision = "FP16" if fp16 else "FP32"
        lines.append(
            'optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "tensorrt" '
            f'parameters {{ key: "precision_mode" value: "{precision}" }} }} ] }} }}'
        )
    text = json.dumps(metadata, ensure_ascii=False)  # protobuf text format has no \u escapes: keep UTF-8
    lines.append(f'parameters {{ key: "metadata" value: {{ string_value: {text} }} }}')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--name", help="the model's name on the server (default: the file's stem)")
    parser.add_argument("--max-batch", type=int, default=16, help="largest batch Triton forms (dynamic ONNX only)")
    parser.add_argument("--fp16", action="store_true", help="TensorRT acceleration in fp16")
    parser.add_argument("--cpu", action="store_true", help="a CPU instance group, no TensorRT")
    args = parser.parse_args(argv)
    if not args.onnx.is_file():
        print(f"triton_repo: {args.onnx} not found", file=sys.stderr)
        return 2
    name = args.name or args.onnx.stem
    folder = args.repo / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.onnx, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(config_text(name, args.onnx, args.max_batch, args.fp16, args.cpu))
    print(f"{folder}: model.onnx and config.pbtxt written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
