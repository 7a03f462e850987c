"""tools/gpu_check.sh on a machine without a GPU: it still prints its table, every check saying why it skipped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_without_a_gpu_every_check_says_why() -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA GPU: run tools/gpu_check.sh and read its table")
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.strip().splitlines()
    assert rows[0].split() == ["check", "result", "note"]
    checks = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", row) for row in rows[2:])}
    names = {"GPU", "TorchScript CUDA", "host->device copies", "onnxruntime cuda", "onnxruntime tensorrt", "TensorRT"}
    assert set(checks) == names
    assert checks["GPU"] == ["none", "nvidia-smi not found"]
    for name in names - {"GPU"}:
        result, why = checks[name]
        assert result == "skipped" and len(why) > 10, (name, result, why)
