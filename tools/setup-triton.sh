#!/usr/bin/env bash
# The Triton test server's venv (.venv-triton): nvidia-pytriton (which bundles the tritonserver binary) and
# onnxruntime, made from the SYSTEM python (/usr/bin/python3). PyTriton's bundled Python backend stub is built
# against the Debian interpreter; under another 3.11 build it fails (`RLock` has no `_recursion_count`).
# Only the tests need it (tests/triton_server.py); streamseg itself talks to Triton through tritonclient.
# Idempotent. Exits 0 without a venv, saying why, where it cannot be made (the Triton tests then skip).
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
if [ -x .venv-triton/bin/python ] && .venv-triton/bin/python -c 'import pytriton, onnxruntime' 2>/dev/null; then
    exit 0
fi
if ! [ -x "$py" ] || ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "setup-triton: $py with venv/ensurepip is needed (apt-get install python3-venv); Triton tests will skip" >&2
    exit 0
fi
rm -rf .venv-triton
"$py" -m venv .venv-triton
if ! .venv-triton/bin/python -m pip install --quiet "nvidia-pytriton==0.7.0" "onnxruntime>=1.23"; then
    echo "setup-triton: installing nvidia-pytriton failed; Triton tests will skip" >&2
    rm -rf .venv-triton
fi
