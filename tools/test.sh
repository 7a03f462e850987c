#!/usr/bin/env bash
# Set up and run the tests: Debian packages (broker, RTSP server, headless Chromium), .venv with streamseg[dev],
# the Triton test server's venv, ruff, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/system-deps.sh tests
bash tools/setup.sh dev
bash tools/setup-triton.sh
.venv/bin/ruff check streamseg tests tools
.venv/bin/ruff format --check streamseg tests tools
.venv/bin/python -m pytest "$@"
