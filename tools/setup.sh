#!/usr/bin/env bash
# Create .venv and install streamseg with the given extras (default: dev). Idempotent; used by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
if [[ ",${extras}," == *",dev,"* ]]; then
    # torch for the TorchScript tests, only as the CPU wheel from a local wheel folder (pip's find-links):
    # PyPI's default Linux build pulls gigabytes of CUDA libraries. Without it those tests skip, saying so.
    if .venv/bin/python -c 'import torch' 2>/dev/null; then
        :
    elif .venv/bin/python -m pip install --quiet --no-index --no-deps "torch==2.13.0" 2>/dev/null; then
        .venv/bin/python -m pip install --quiet "torch==2.13.0"  # its small pure-Python dependencies
    else
        echo "setup: no local torch 2.13.0 CPU wheel; the TorchScript tests will skip" >&2
    fi
fi
