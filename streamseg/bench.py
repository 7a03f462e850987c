"""`streamseg bench`: end-to-end pipeline throughput against the raw engine forward pass, in the same run.

Prints the raw forward-pass throughput of the model (same engine, same thread count), the pipeline throughput
on a real video with the usual sinks (JSON lines + annotated MP4), their ratio, per-stage times and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import av

from streamseg.config.camera import CameraConfig
from streamseg.daemon import EnginePool, build_sinks
from streamseg.errors import SourceError
from streamseg.pipeline import CameraPipeline


def bench(args: argparse.Namespace) -> int:
    if not args.source.is_file():
        raise SourceError(f"source file not found: {args.source}")
    with tempfile.TemporaryDirectory(prefix="streamseg-bench-") as tmp:
        cfg = _camera_config(args, Path(tmp))
        pool = EnginePool(Path.cwd())
        try:
            model = pool.model(cfg.model)
            decode = _decode_only(args.source, args.frames)
            n = min(decode["frames"], 100)
            # The raw baseline is taken before and after the pipeline run and averaged, so that a machine
            # whose speed drifts during the run (thermal, neighbours) biases neither side.
            raw_before = _raw_forward(model, args.source, n=n)
            pipe = _pipeline(cfg, model, args.frames)
            raw_after = _raw_forward(model, args.source, n=n)
            raw = (raw_before + raw_after) / 2
        finally:
            pool.close()
    figures = {
        "model": str(model.engine.info.path.name),
        "engine": model.engine.name,
        "threads": args.threads,
        "source": str(args.source),
        "raw_forward_fps": round(raw, 2),
        "raw_forward_fps_before_after": [round(raw_before, 2), round(raw_after, 2)],
        "pipeline_fps": round(pipe["fps"], 2),
        "ratio": round(pipe["fps"] / raw, 3),
        "frames": pipe["frames"],
        "decode_ms": round(decode["ms"], 2),
        "stages_ms": {k: round(v, 2) for k, v in pipe["stages_ms"].items()},
        "sinks_ms": {k: round(v, 2) for k, v in pipe["sinks_ms"].items()},
        "detections_per_frame": round(pipe["detections"] / max(pipe["frames"], 1), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(figures) if args.json else _table(figures))
    return 0


def _camera_config(args: argparse.Namespace, out: Path) -> CameraConfig:
    outputs: dict[str, Any] = {"jsonl": {"path": str(out / "bench.jsonl")}}
    if not args.no_video:
        outputs["video"] = {"path": str(out / "bench.mp4")}
    raw = {
        "source": {"url": str(args.source.resolve())},
        "model": {"path": args.model, "threads": args.threads},
        "outputs": outputs,
    }
    return CameraConfig.model_validate(raw, context={"base_dir": Path.cwd()})


def _decode_only(source: Path, limit: int) -> dict[str, float]:
    """PyAV decode + BGR conversion alone: the floor of what the source stage costs (runs on its own thread)."""
    frames = 0
    t0 = time.perf_counter()
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="bgr24")
            frames += 1
            if limit and frames >= limit:
                break
    elapsed = time.perf_counter() - t0
    return {"frames": frames, "ms": 1000 * elapsed / max(frames, 1)}


def _raw_forward(model: Any, source: Path, n: int) -> float:
    """Forward passes per second of the engine alone, on a real preprocessed frame."""
    with av.open(str(source)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="bgr24")
    tensor, _ = model.preprocess(image)
    for _ in range(3):  # warm-up: first runs allocate and tune
        model.engine.infer(tensor)
    n = max(n, 10)
    t0 = time.perf_counter()
    for _ in range(n):
        model.engine.infer(tensor)
    return n / (time.perf_counter() - t0)


def _pipeline(cfg: CameraConfig, model: Any, limit: int) -> dict[str, Any]:
    sinks = build_sinks("bench", cfg, None, False)
    camera = CameraPipeline("bench", cfg, model, sinks)
    t0 = time.perf_counter()
    camera.start()
    while not camera.join(timeout=0.05):
        if limit and camera.stats.frames >= limit:
            camera.stop()
    elapsed = time.perf_counter() - t0  # includes draining the sinks: the outputs are complete
    if camera.error:
        raise SourceError(camera.error)
    frames = camera.stats.frames
    return {
        "frames": frames,
        "fps": frames / elapsed,
        "detections": camera.stats.detections,
        "stages_ms": camera.times.ms_per_frame(),
        "sinks_ms": {s.kind: 1000 * s.busy_s / max(s.written, 1) for s in sinks},
    }


def _table(f: dict[str, Any]) -> str:
    stages = ", ".join(f"{k} {v:.2f}" for k, v in f["stages_ms"].items())
    sinks = ", ".join(f"{k} {v:.2f}" for k, v in f["sinks_ms"].items()) or "none"
    b, a = f["raw_forward_fps_before_after"]
    return "\n".join(
        [
            f"model            {f['model']} on {f['engine']}, {f['threads']} threads",
            f"source           {f['source']} ({f['frames']} frames, {f['detections_per_frame']} detections/frame)",
            f"raw forward      {f['raw_forward_fps']:.2f} fps  (engine alone, same model and threads; "
            f"before/after the pipeline: {b:.2f} / {a:.2f})",
            f"pipeline         {f['pipeline_fps']:.2f} fps  (decode -> infer -> masks -> track -> sinks)",
            f"ratio            {f['ratio']:.3f} x raw forward",
            f"decode           {f['decode_ms']:.2f} ms/frame (source thread)",
            f"worker stages    {stages} ms/frame",
            f"sinks            {sinks} ms/frame (own threads)",
            f"peak RSS         {f['peak_rss_mb']:.1f} MB",
        ]
    )
