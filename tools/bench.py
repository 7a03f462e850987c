"""Benchmark: pipeline throughput vs the raw engine forward pass, same run. Same as `streamseg bench`.

python tools/bench.py --model ../shared/models/yolov8n-seg-320.onnx --source ../shared/media/bikes.mp4
"""

import sys

from streamseg.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
