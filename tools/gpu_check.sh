#!/usr/bin/env bash
# One command for any machine with an NVIDIA GPU: run what can run there and print a table (tools/gpu_check.py):
# TorchScript on CUDA with 1 vs 2 workers, pinned vs pageable copies, onnxruntime's GPU providers, TensorRT.
#   bash tools/gpu_check.sh [--onnx MODEL.onnx] [--torchscript MODEL.torchscript] [--frames 200]
# Uses .venv (tools/setup.sh) unless PYTHON is set; install the GPU extras you want checked into it first.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python3
exec "$py" tools/gpu_check.py "$@"
