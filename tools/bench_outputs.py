"""What the annotated outputs cost: encoder ms per frame, and detection throughput with each output on.

    .venv/bin/python tools/bench_outputs.py [--model M.onnx] [--source VIDEO] [--repeat 3] [--frames N]
                                            [--rtsp-url rtsp://...] [--outputs none,video,hls,rtsp]
                                            [--preset P] [--output-fps F]

One file camera on the video, end to end (decode -> inference -> masks -> tracking -> outputs), once per
output kind and with no output at all (the baseline), interleaved `--repeat` times so every ratio compares
runs made back to back on the same machine. Without --rtsp-url the RTSP output publishes to the test RTSP
server in RECORD mode (tests/rtsp_server.py: GStreamer, system python), as it would to MediaMTX.

Printed per output: pipeline fps (median), its ratio to the same run's baseline (median of the per-run
ratios), and the output's own cost in ms per frame encoded (draw + encode + mux, on its own thread), with
the frames it wrote and dropped. The RTSP and HLS outputs drop frames rather than slow detection: their
`dropped` says how many frames a viewer would miss at full speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamseg.config.camera import CameraConfig  # noqa: E402
from streamseg.inference.pool import StagePool, available_cores  # noqa: E402
from streamseg.models.yolo import YoloModel  # noqa: E402
from streamseg.pipeline import CameraPipeline  # noqa: E402
from streamseg.sinks import build_sinks  # noqa: E402

SHARED = REPO.parent / "shared"
KINDS = ("none", "video", "hls", "rtsp")
PHASES = ("draw", "encode", "mux")  # AnnotatedSink.times


def camera_config(
    kind: str,
    source: Path,
    model: str,
    out: Path,
    run: int,
    rtsp_url: str,
    preset: str | None = None,
    fps: float | None = None,
) -> CameraConfig:
    outputs: dict[str, Any] = {
        "none": {},
        "video": {"video": {"path": str(out / f"video-{run}.mp4")}},
        "hls": {"hls": {"dir": str(out / f"hls-{run}")}},
        "rtsp": {"rtsp": {"url": rtsp_url}},
    }[kind]
    for settings in outputs.values():
        settings |= {"preset": preset} if preset else {}
        settings |= {"fps": fps} if fps else {}
    raw = {"source": {"url": str(source)}, "model": {"path": model}, "outputs": outputs}
    return CameraConfig.model_validate(raw, context={"base_dir": Path.cwd()})


def run_once(cfg: CameraConfig, stage: Any, limit: int) -> dict[str, Any]:
    import time

    model = YoloModel.from_config(stage.info, cfg.model)
    sinks = build_sinks("bench", cfg)
    camera = CameraPipeline("bench", cfg, model, stage, sinks)
    t0 = time.perf_counter()
    camera.start()
    while not camera.join(timeout=0.05):
        if limit and camera.stats.frames >= limit:
            camera.stop()
    elapsed = time.perf_counter() - t0  # includes draining the outputs
    if camera.error:
        raise SystemExit(f"bench camera failed: {camera.error}")
    out: dict[str, Any] = {"fps": camera.stats.frames / elapsed, "frames": camera.stats.frames}
    for sink in sinks:
        out |= {
            "ms": 1000 * sink.busy_s / max(sink.written, 1),
            "written": sink.written,
            "dropped": sink.dropped,
            "codec": getattr(sink, "codec", None),
            "phases_ms": sink.times.ms_per_call(),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(SHARED / "models" / "yolov8n-seg-320.onnx"))
    parser.add_argument("--source", type=Path, default=SHARED / "media" / "bikes.mp4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=0, help="stop each run after this many frames (0: all)")
    parser.add_argument("--rtsp-url", help="publish here (default: a test RTSP server in RECORD mode)")
    parser.add_argument("--outputs", default=",".join(KINDS), help=f"comma-separated, from {', '.join(KINDS)}")
    parser.add_argument("--preset", help="libx264 preset of every output (default: each output's own)")
    parser.add_argument("--output-fps", type=float, help="the outputs' fps cap (default: every frame)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    kinds = ["none"] + [k for k in args.outputs.split(",") if k != "none"]

    server = None
    rtsp_url = args.rtsp_url
    if "rtsp" in kinds and rtsp_url is None:
        from tests.rtsp import RtspServer, gst_rtsp_available

        if not gst_rtsp_available():
            raise SystemExit("no --rtsp-url and GStreamer's RTSP server is not installed (tools/system-deps.sh)")
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="streamseg-bench-outputs-") as tmp:
        out = Path(tmp)
        if "rtsp" in kinds and rtsp_url is None:
            (out / "recorded").mkdir()
            server = RtspServer(record=out / "recorded")
            server.start()
            rtsp_url = server.url("push")
        first = camera_config("none", args.source, args.model, out, 0, rtsp_url or "rtsp://unused/x")
        pool = StagePool(Path.cwd(), cores=available_cores())
        try:
            stage = pool.stage(first.model, cameras=1)
            run_once(first, stage, 30)  # warm-up (first sessions' allocations), not counted
            for run in range(args.repeat):
                for kind in kinds:
                    url = rtsp_url or "rtsp://unused/x"
                    cfg = camera_config(kind, args.source, args.model, out, run, url, args.preset, args.output_fps)
                    results[kind].append(run_once(cfg, stage, args.frames))
        finally:
            pool.close()
            if server is not None:
                server.stop()

    figures: dict[str, Any] = {"model": Path(args.model).name, "source": str(args.source), "cores": available_cores()}
    base = results["none"]
    for kind in kinds:
        runs = results[kind]
        row: dict[str, Any] = {
            "fps_runs": [round(r["fps"], 2) for r in runs],
            "fps": round(statistics.median(r["fps"] for r in runs), 2),
            "vs_none": round(statistics.median(r["fps"] / b["fps"] for r, b in zip(runs, base, strict=True)), 3),
        }
        if kind != "none":
            row |= {
                "ms_per_frame": round(statistics.median(r["ms"] for r in runs), 2),
                "written": runs[-1]["written"],
                "dropped": runs[-1]["dropped"],
                "codec": runs[-1]["codec"],
                "phases_ms": {k: round(statistics.median(r["phases_ms"][k] for r in runs), 2) for k in PHASES},
            }
        figures[kind] = row
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{figures['model']} on {figures['source']}, {figures['cores']} cores, {args.repeat} runs interleaved")
    for kind in kinds:
        f = figures[kind]
        line = f"{kind:6s} {f['fps']:7.2f} fps  ({f['vs_none']:.3f} x none; runs {f['fps_runs']})"
        if kind != "none":
            line += (
                f"  output {f['ms_per_frame']:.2f} ms/frame ({f['codec']}), "
                f"written {f['written']}, dropped {f['dropped']} (last run); "
                + ", ".join(f"{k} {v:.2f}" for k, v in f["phases_ms"].items())
                + " ms"
            )
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
