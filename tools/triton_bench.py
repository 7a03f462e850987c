"""N file cameras on a local engine against the same N cameras through a Triton server, in the same run.

    python tools/triton_bench.py --model MODEL.onnx --url grpc://127.0.0.1:8001 [--name yolov8n-seg]
                                 [--source bikes.mp4] [--cameras 4] [--frames 100] [--repeat 3] [--batch-size 1]

Each repeat runs the whole pipeline (decode -> preprocess -> inference -> masks -> tracking -> JSON lines) of
`--cameras` cameras on the video, first with the daemon's local engine for MODEL (workers: auto), then with
`backend: triton` against the server at --url (which must serve the same model as --name), and prints the frames
per second of both and their ratio per run, then the medians. A test server: tests/triton_server.py, run by the
venv tools/setup-triton.sh makes:  .venv-triton/bin/python tests/triton_server.py MODEL.onnx 8001
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

from streamseg.config.camera import CameraConfig  # noqa: E402
from streamseg.inference.pool import StagePool  # noqa: E402
from streamseg.models.yolo import YoloModel  # noqa: E402
from streamseg.pipeline import CameraPipeline  # noqa: E402
from streamseg.sinks import build_sinks  # noqa: E402


def run_cameras(model: dict, source: Path, cameras: int, frames: int, out: Path) -> tuple[float, str]:
    """(frames/s of all cameras together, the engine's name) for one pipeline run."""
    configs = [
        CameraConfig.model_validate(
            {"source": {"url": str(source)}, "model": model, "outputs": {"jsonl": {"path": str(out / f"c{i}.jsonl")}}},
            context={"base_dir": REPO},
        )
        for i in range(cameras)
    ]
    pool = StagePool(REPO)
    try:
        stage = pool.stage(configs[0].model, cameras=cameras)
        pipes = [
            CameraPipeline(f"c{i}", cfg, YoloModel.from_config(stage.info, cfg.model), stage, build_sinks(f"c{i}", cfg))
            for i, cfg in enumerate(configs)
        ]
        t0 = time.perf_counter()
        for p in pipes:
            p.start()
        for p in pipes:
            while not p.join(timeout=0.05):
                if p.stats.frames >= frames:
                    p.stop()
        elapsed = time.perf_counter() - t0
        errors = [p.error for p in pipes if p.error]
        if errors:
            raise SystemExit(f"triton_bench: {errors[0]}")
        return sum(p.stats.frames for p in pipes) / elapsed, stage.engine_name
    finally:
        pool.close()
        for f in out.glob("*.jsonl"):
            f.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the ONNX file the local engine runs")
    parser.add_argument("--url", required=True, help="the Triton server serving the same model")
    parser.add_argument("--name", default="yolov8n-seg", help="the model's name on the server")
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "media" / "bikes.mp4")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100, help="frames per camera and run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1, help="model.batch_size of both runs (default 1)")
    args = parser.parse_args()
    local = {"path": str(args.model.resolve()), "batch_size": args.batch_size}
    remote = {"path": args.name, "backend": "triton", "triton": {"url": args.url}, "batch_size": args.batch_size}
    runs = []
    with tempfile.TemporaryDirectory(prefix="triton-bench-") as tmp:
        for i in range(args.repeat):
            local_fps, local_engine = run_cameras(local, args.source, args.cameras, args.frames, Path(tmp))
            triton_fps, triton_engine = run_cameras(remote, args.source, args.cameras, args.frames, Path(tmp))
            runs.append((local_fps, triton_fps))
            print(
                f"run {i + 1}: local {local_fps:.1f} fps ({local_engine}), triton {triton_fps:.1f} fps "
                f"({triton_engine}): {triton_fps / local_fps:.2f} x local",
                flush=True,
            )
    local_med = statistics.median(r[0] for r in runs)
    triton_med = statistics.median(r[1] for r in runs)
    ratio = statistics.median(r[1] / r[0] for r in runs)
    print(
        f"median of {len(runs)}: {args.cameras} cameras, local {local_med:.1f} fps, triton {triton_med:.1f} fps, "
        f"triton = {ratio:.2f} x local (ratio taken within each run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
