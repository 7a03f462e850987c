"""streamseg against Ultralytics' `model.track(stream=True)` on the same ONNX file and video, in the same run.

Ultralytics needs torch, which streamseg never does, so run this with a Python that has both, e.g.:

    python3 -m venv /tmp/ul && /tmp/ul/bin/pip install torch ultralytics lap && /tmp/ul/bin/pip install -e .
    /tmp/ul/bin/python tools/bench_ultralytics.py --model ../shared/models/yolov8n-seg-320.onnx \\
        --source ../shared/media/bikes.mp4 --repeat 3

Each run measures, one after the other: the raw forward pass (one onnxruntime session with every core),
Ultralytics' tracker on the video (ByteTrack, masks, `stream=True`; timed from its first result, so its model
loading is not counted against it) and streamseg's pipeline on the same video (ByteTrack, masks, events, JSON
lines written). It prints every run and the medians of the ratios taken within each run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamseg.bench import _camera_config, _first_frame, _pipeline, _raw_forward  # noqa: E402
from streamseg.cli import _parser  # noqa: E402
from streamseg.engines import create_engine  # noqa: E402
from streamseg.inference.pool import StagePool, available_cores  # noqa: E402
from streamseg.models.yolo import YoloModel  # noqa: E402


def ultralytics_track(model: Path, source: Path, imgsz: int) -> float:
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="segment")
    frames, first = 0, 0.0
    for _ in yolo.track(str(source), stream=True, imgsz=imgsz, verbose=False, tracker="bytetrack.yaml"):
        frames += 1
        if frames == 1:
            first = time.perf_counter()
    return (frames - 1) / (time.perf_counter() - first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import ultralytics

    cores = available_cores()
    # streamseg's side exactly as `streamseg bench --no-video` would build it (its parser's defaults)
    ns = _parser().parse_args(["bench", "--model", str(args.model), "--source", str(args.source), "--no-video"])
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _camera_config(ns, Path(tmp), 0)
        pool = StagePool(Path.cwd(), cores=cores)
        stage = pool.stage(cfg.model)
        raw_engine = create_engine(args.model, providers=["cpu"], threads=cores)
        tensor, _ = YoloModel.from_config(stage.info, cfg.model).preprocess(_first_frame(args.source))
        imgsz = stage.info.imgsz[0]
        try:
            for i in range(args.repeat):
                raw = _raw_forward(raw_engine, tensor, 100)
                ul = ultralytics_track(args.model, args.source, imgsz)
                ours = _pipeline([cfg], stage, 0, run=i)["fps"]
                runs.append((raw, ul, ours))
                print(f"run {i + 1}: raw {raw:.1f} fps, ultralytics track {ul:.1f} fps, streamseg {ours:.1f} fps")
        finally:
            raw_engine.close()
            pool.close()
    med = [statistics.median(r[k] for r in runs) for k in range(3)]
    print(f"\nultralytics {ultralytics.__version__}, {args.model.name}, {args.source.name}, {cores} cores")
    print(f"median fps: raw {med[0]:.1f}, ultralytics track {med[1]:.1f}, streamseg {med[2]:.1f}")
    print(
        f"median ratios: ultralytics {statistics.median(u / r for r, u, _ in runs):.3f} x raw, "
        f"streamseg {statistics.median(s / r for r, _, s in runs):.3f} x raw, "
        f"streamseg {statistics.median(s / u for _, u, s in runs):.2f} x ultralytics"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
