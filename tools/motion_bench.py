"""What motion detection costs a frame, against one inference of the model, measured in the same run.

    .venv/bin/python tools/motion_bench.py [--source bikes.mp4] [--model M.onnx] [--frames 200] [--repeat 3]

Runs streamseg.motion.MotionDetector (the defaults of the `motion:` section) over the real frames of --source at
their own size and scaled up to 1920x1080 and 3840x2160 (one thread, as a camera's worker runs it), and the model
on one preprocessed frame (the stage's engine on every core). Prints the milliseconds a frame of each, per run,
and the medians of the runs; the ratio is motion / inference, per run, then the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from streamseg.config.motion import MotionConfig  # noqa: E402
from streamseg.engines import create_engine  # noqa: E402
from streamseg.inference.pool import available_cores  # noqa: E402
from streamseg.models.yolo import YoloModel  # noqa: E402

SIZES = {"source": None, "1080p": (1920, 1080), "4k": (3840, 2160)}


def frames(source: Path, n: int) -> list[np.ndarray]:
    with av.open(str(source)) as container:
        return [f.to_ndarray(format="bgr24") for _, f in zip(range(n), container.decode(video=0), strict=False)]


def motion_ms(images: list[np.ndarray]) -> float:
    from streamseg.motion import MotionDetector

    detector = MotionDetector(MotionConfig(enabled=True))
    detector(images[0])
    t0 = time.perf_counter()
    for image in images[1:]:
        detector(image)
    return 1000 * (time.perf_counter() - t0) / (len(images) - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "media" / "bikes.mp4")
    parser.add_argument("--model", type=Path, default=REPO.parent / "shared" / "models" / "yolov8n-seg-320.onnx")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    cv2.setNumThreads(1)  # a camera's worker is one thread; OpenCV's pool would borrow the other cores
    base = frames(args.source, args.frames)
    h, w = base[0].shape[:2]
    sets = {
        (f"{w}x{h}" if size is None else name): base if size is None else [cv2.resize(f, size) for f in base]
        for name, size in SIZES.items()
    }
    engine = create_engine(args.model, providers=["cpu"], threads=available_cores())
    model = YoloModel(engine.info)
    tensor, _ = model.preprocess(base[0])
    runs: list[dict[str, float]] = []
    try:
        for i in range(args.repeat):
            engine.infer(tensor)
            t0 = time.perf_counter()
            for _ in range(30):
                engine.infer(tensor)
            run = {"inference": 1000 * (time.perf_counter() - t0) / 30}
            run |= {name: motion_ms(images) for name, images in sets.items()}
            runs.append(run)
            print(f"run {i + 1}: " + "  ".join(f"{k} {v:.3f} ms" for k, v in run.items()), flush=True)
    finally:
        engine.close()
    print(f"\nmedians of {len(runs)} runs ({args.frames} frames of {args.source.name}; model {args.model.name}):")
    infer = statistics.median(r["inference"] for r in runs)
    print(f"  inference (one frame, {available_cores()} threads): {infer:.2f} ms")
    for name in sets:
        ms = statistics.median(r[name] for r in runs)
        ratio = statistics.median(r[name] / r["inference"] for r in runs)
        print(f"  motion at {name:9s}: {ms:.3f} ms a frame = {100 * ratio:.1f} % of one inference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
