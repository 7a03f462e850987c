"""Motion gating and fair rates, measured: inference calls on the still clip, and how many still cameras plus busy
ones a machine serves at bounded latency, with and without gating. (A benchmark, not a test.)

    .venv/bin/python tools/gating_bench.py calls                      # the still clip as a file, gated and not
    .venv/bin/python tools/gating_bench.py live --busy 1 --still 0,4,8 [--seconds 15] [--repeat 3] [--gating on,off]

`calls`: the still clip of the tests (bikes.mp4's first frame held 20 s, 4 s of its motion, its last moving frame
held 4 s) run to its end as a file camera, with `motion.enabled` and without: inference calls per camera-minute.

`live`: real-time cameras from the test RTSP server (tests/rtsp_server.py, GStreamer, the system python): the busy
ones show bikes.mp4 (motion all the time), the still ones a still scene (bikes.mp4's first frame held), each
paced at 25 fps. For each number of still cameras (--still), with gating on and off, the cameras run --seconds on
one shared inference stage (workers: auto, the fast model) and the tool prints, per run and as medians of the
--repeat runs: each busy camera's processed frames a second and its ratio to the rate the busy cameras get alone
(--still 0 in the same repeat), the worst capture-to-sink latency (p95 and max, every camera) and the frames
dropped. A configuration is "served" when the busy cameras keep >= 80 % of their alone rate and every camera's
p95 latency is under --max-latency ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import av  # noqa: E402
import numpy as np  # noqa: E402

from streamseg.config.camera import CameraConfig  # noqa: E402
from streamseg.inference.pool import StagePool  # noqa: E402
from streamseg.models.yolo import YoloModel  # noqa: E402
from streamseg.pipeline import CameraPipeline  # noqa: E402
from streamseg.sinks import build_sinks  # noqa: E402
from tests.media import still_clip  # noqa: E402

SHARED = REPO.parent / "shared"
# a key frame every second, like a camera: a client that joins mid-stream starts decoding within a second
ENCODER = {"crf": "20", "preset": "ultrafast", "x264-params": "keyint=25"}
WARMUP_S = 3.0  # cameras connect and the first frames go through before the window measured


def cameras(pool: StagePool, sources: dict[str, str], model: Path, gating: bool, out: Path) -> list[CameraPipeline]:
    configs = {
        name: CameraConfig.model_validate(
            {
                "source": {"url": url},
                "model": {"path": str(model)},
                "motion": {"enabled": gating},
                "outputs": {"jsonl": {"path": str(out / f"{name}.jsonl")}},
            },
            context={"base_dir": out},
        )
        for name, url in sources.items()
    }
    first = next(iter(configs.values()))
    stage = pool.stage(first.model, cameras=len(configs))
    return [
        CameraPipeline(name, cfg, YoloModel.from_config(stage.info, cfg.model), stage, build_sinks(name, cfg))
        for name, cfg in configs.items()
    ]


def calls(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="gating-bench-") as tmp:
        out = Path(tmp)
        clip = out / "still.mp4"
        parts = still_clip(args.source, clip)
        minutes = parts[2].stop / 25 / 60
        for gating in (True, False):
            pool = StagePool(out)
            try:
                (camera,) = cameras(pool, {"still": str(clip)}, args.model, gating, out)
                t0 = time.perf_counter()
                camera.start()
                camera.join()
                elapsed = time.perf_counter() - t0
                stage = pool.stages[0]
                print(
                    f"gating {'on ' if gating else 'off'}: {stage.stats.frames} inference calls for "
                    f"{parts[2].stop} frames ({minutes * 60:.0f} s) = {stage.stats.frames / minutes:.0f} per "
                    f"camera-minute; {camera.stats.gated} gated; the file took {elapsed:.1f} s",
                    flush=True,
                )
            finally:
                pool.close()
    return 0


def still_scene(src: Path, dst: Path, seconds: float) -> Path:
    """`src`'s first frame held for `seconds` (H.264, 25 fps)."""
    with av.open(str(src)) as inp:
        image = next(inp.decode(video=0)).to_ndarray(format="bgr24")
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=25, options=ENCODER)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
        for _ in range(round(seconds * 25)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    return dst


def busy_scene(src: Path, dst: Path, seconds: float) -> Path:
    """`src` played forwards and backwards until `seconds` are filled: motion all the time, no cut."""
    with av.open(str(src)) as inp:
        images = [f.to_ndarray(format="bgr24") for f in inp.decode(video=0)]
    loop = images + images[::-1]
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=25, options=ENCODER)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        for i in range(round(seconds * 25)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(loop[i % len(loop)], format="bgr24")))
        out.mux(stream.encode())
    return dst


def live_run(busy_url: str, still_url: str, args: argparse.Namespace, n_still: int, gating: bool) -> dict:
    sources = {f"busy{i}": busy_url for i in range(args.busy)} | {f"still{i}": still_url for i in range(n_still)}
    with tempfile.TemporaryDirectory(prefix="gating-bench-") as tmp:
        out = Path(tmp)
        pool = StagePool(out)
        try:
            cams = cameras(pool, sources, args.model, gating, out)
            for c in cams:
                c.start()
            start = time.time()
            time.sleep(WARMUP_S)
            at_start = {c.name: (c.stats.frames, c.stats.gated, c.dropped) for c in cams}
            time.sleep(args.seconds)
            at_end = {c.name: (c.stats.frames, c.stats.gated, c.dropped) for c in cams}
            for c in cams:
                c.stop()
            for c in cams:
                c.join(60)
        finally:
            pool.close()
        window = (start + WARMUP_S, start + WARMUP_S + args.seconds)
        latency: dict[str, list[float]] = {}
        for c in cams:
            lines = [json.loads(line) for line in (out / f"{c.name}.jsonl").read_text().splitlines()]
            latency[c.name] = [
                1000 * (o["publish_ts"] - o["capture_ts"])
                for o in lines
                if o["topic"] == "detections" and window[0] <= o["capture_ts"] <= window[1]
            ]
    rate = {n: (at_end[n][0] - at_start[n][0]) / args.seconds for n in sources}
    gated = sum(at_end[n][1] - at_start[n][1] for n in sources)
    dropped = sum(at_end[n][2] - at_start[n][2] for n in sources)
    every = [v for vs in latency.values() for v in vs]
    p95 = {n: float(np.percentile(v, 95)) if v else 0.0 for n, v in latency.items()}
    return {
        "busy_fps": statistics.fmean(rate[n] for n in sources if n.startswith("busy")),
        "still_fps": statistics.fmean([rate[n] for n in sources if n.startswith("still")] or [0.0]),
        "p95_ms": max(p95.values()),
        "max_ms": max(every) if every else 0.0,
        "gated": gated,
        "dropped": dropped,
    }


def live(args: argparse.Namespace) -> int:
    from tests.rtsp import RtspServer, gst_rtsp_available

    if not gst_rtsp_available():
        print("GStreamer's RTSP server is not installed (tools/system-deps.sh)", file=sys.stderr)
        return 2
    counts = [int(n) for n in args.still.split(",")]
    modes = [m == "on" for m in args.gating.split(",")]
    seconds = WARMUP_S + args.seconds + 10
    with tempfile.TemporaryDirectory(prefix="gating-bench-media-") as tmp:
        busy_server = RtspServer(busy_scene(args.source, Path(tmp) / "busy.mp4", seconds))
        still_server = RtspServer(still_scene(args.source, Path(tmp) / "still.mp4", seconds))
        busy_server.start()
        still_server.start()
        results: dict[tuple[int, bool], list[dict]] = {}
        try:
            for r in range(args.repeat):
                alone = None
                for n in counts:
                    for gating in modes if n else modes[:1]:  # no still camera: gating changes nothing
                        res = live_run(busy_server.url("bikes"), still_server.url("bikes"), args, n, gating)
                        alone = alone or (res["busy_fps"] if n == 0 else None)
                        res["ratio"] = res["busy_fps"] / alone if alone else float("nan")
                        results.setdefault((n, gating), []).append(res)
                        print(
                            f"repeat {r + 1}: {args.busy} busy + {n:2d} still, gating {'on ' if gating else 'off'}: "
                            + _line(res),
                            flush=True,
                        )
        finally:
            busy_server.stop()
            still_server.stop()
    print(
        f"\nmedians of {args.repeat} repeats ({args.seconds:g} s each, model {args.model.name}, "
        f"served: busy >= 80 % of alone and p95 <= {args.max_latency:g} ms):"
    )
    for (n, gating), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        served = med["ratio"] >= 0.8 and med["p95_ms"] <= args.max_latency
        print(
            f"  {args.busy} busy + {n:2d} still, gating {'on ' if gating else 'off'}: {_line(med)}"
            f"  -> {'served' if served else 'NOT served'}"
        )
    return 0


def _line(r: dict) -> str:
    return (
        f"busy {r['busy_fps']:5.1f} fps ({100 * r['ratio']:5.1f} % of alone), still {r['still_fps']:5.1f} fps "
        f"inferred, p95 {r['p95_ms']:6.0f} ms, max {r['max_ms']:6.0f} ms, gated {r['gated']:5.0f}, "
        f"dropped {r['dropped']:5.0f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["calls", "live"])
    parser.add_argument("--source", type=Path, default=SHARED / "media" / "bikes.mp4")
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "yolov8n-seg-320.onnx")
    parser.add_argument("--busy", type=int, default=1)
    parser.add_argument("--still", default="0,4,8")
    parser.add_argument("--gating", default="on,off")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-latency", type=float, default=500.0)
    args = parser.parse_args()
    return calls(args) if args.what == "calls" else live(args)


if __name__ == "__main__":
    sys.exit(main())
